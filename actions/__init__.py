"""Custom actions for the rasa-sdk action server: answers from the procedure catalog."""
