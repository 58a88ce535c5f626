"""The outbox queue, the send loop and the transports that hand messages to SMTP."""
