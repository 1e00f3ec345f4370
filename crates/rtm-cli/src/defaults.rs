//! The addresses the CLI talks to when none is given (a file of their own: the arguments and
//! the failure hints both name them).

/// The server API's address when `--endpoint` and `RTM_ENDPOINT` are not given.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:13315";
/// The gate's address when `--gate` and `RTM_GATE` are not given.
pub const DEFAULT_GATE: &str = "127.0.0.1:13321";
