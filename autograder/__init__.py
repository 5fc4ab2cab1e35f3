"""The course's grading tools: nbgrader's configuration and the isolated, tamper-resistant batch grader."""
