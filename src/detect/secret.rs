//! A credential's value, held only to mask it: it prints as its length.

/// Bytes that must never reach a record, an error or a panic message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret([{} bytes])", self.0.len())
    }
}
