//! The gRPC status codes, as the numbers carried in `grpc-status`.
//!
//! Plain `u32` constants rather than an enum because a peer may send any number
//! and the codec must pass unknown ones through untouched.

/// Not an error; returned on success.
pub const OK: u32 = 0;
/// The operation was cancelled, typically by the caller.
pub const CANCELLED: u32 = 1;
/// Unknown error, e.g. an error from another address space without enough information.
pub const UNKNOWN: u32 = 2;
/// The client specified an invalid argument.
pub const INVALID_ARGUMENT: u32 = 3;
/// The deadline expired before the operation could complete.
pub const DEADLINE_EXCEEDED: u32 = 4;
/// A requested entity was not found.
pub const NOT_FOUND: u32 = 5;
/// The entity the client tried to create already exists.
pub const ALREADY_EXISTS: u32 = 6;
/// The caller lacks permission for the operation.
pub const PERMISSION_DENIED: u32 = 7;
/// Some resource has been exhausted, e.g. a message exceeded the size limit.
pub const RESOURCE_EXHAUSTED: u32 = 8;
/// The system is not in a state required for the operation.
pub const FAILED_PRECONDITION: u32 = 9;
/// The operation was aborted, typically due to a concurrency issue.
pub const ABORTED: u32 = 10;
/// The operation was attempted past the valid range.
pub const OUT_OF_RANGE: u32 = 11;
/// The operation, or the called method, is not implemented or supported.
pub const UNIMPLEMENTED: u32 = 12;
/// An invariant expected by the underlying system was broken, e.g. malformed framing.
pub const INTERNAL: u32 = 13;
/// The service is currently unavailable; retrying may succeed.
pub const UNAVAILABLE: u32 = 14;
/// Unrecoverable data loss or corruption.
pub const DATA_LOSS: u32 = 15;
/// The request lacks valid authentication credentials.
pub const UNAUTHENTICATED: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_standard() {
        let all = [
            OK,
            CANCELLED,
            UNKNOWN,
            INVALID_ARGUMENT,
            DEADLINE_EXCEEDED,
            NOT_FOUND,
            ALREADY_EXISTS,
            PERMISSION_DENIED,
            RESOURCE_EXHAUSTED,
            FAILED_PRECONDITION,
            ABORTED,
            OUT_OF_RANGE,
            UNIMPLEMENTED,
            INTERNAL,
            UNAVAILABLE,
            DATA_LOSS,
            UNAUTHENTICATED,
        ];
        for (i, code) in all.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
    }
}
