"""The key service (command side): decides key and account commands and appends their
events to the key-events topic. `commands` holds the commands and the pure decision,
`service` the I/O (`KeyService`, `start_key_service`)."""
