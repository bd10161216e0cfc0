"""What was observed -> status: the observed children, conditions, Events. Pure."""
