"""Jobs: durable tasks with leases, retries and dead letters; the queue transport; resident workers."""
