"""What people send the association from its public pages (membership applications, event
registrations, subscriptions), stored as evidence and turned into the pipeline's facts."""
