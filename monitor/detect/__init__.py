"""Detection: the rule language of indicators.yaml, the matcher, text and language handling."""
