//! Shared configuration file (not yet implemented).
#![forbid(unsafe_code)]
