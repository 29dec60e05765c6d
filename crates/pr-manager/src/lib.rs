//! Client library for PR helper sockets.
