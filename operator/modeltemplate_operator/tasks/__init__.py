"""The task protocol of ASYNC endpoints and the queue client (Redis Streams)."""
