"""Network clients: an asyncio DDP client (`jobcollection.client.ddp`)."""
