//! Shared code of the example servers and clients.
