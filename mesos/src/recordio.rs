//! RecordIO, the framing of Mesos's streaming responses: each record is its length in
//! bytes as decimal ASCII, a `\n`, then that many bytes (one JSON or protobuf message).
//!
//! Owns encoding one record and decoding a byte stream back into records with a limit on
//! the size of one. It must never interpret a record's contents.

/// Largest record the decoder accepts, in bytes (Mesos's events are far smaller; a larger
/// length prefix means a corrupt or hostile stream).
pub const RECORD_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most digits a length prefix may have before its `\n`.
const LENGTH_MAX_DIGITS: usize = 10;

/// One record: `<length>\n<bytes>`.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\n", record.len()).into_bytes();
    out.extend_from_slice(record);
    out
}

/// A stream that is not RecordIO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error("record length prefix is not a decimal number: '{0}'")]
    BadLength(String),
    #[error("record of {0} bytes is larger than the {RECORD_MAX_BYTES} accepted")]
    TooLarge(usize),
}

/// Splits a byte stream into records; bytes may arrive in any pieces.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds `bytes` and returns every record now complete, in order. After an error the
    /// stream is unusable.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        self.buffer.extend_from_slice(bytes);
        let mut records = Vec::new();
        loop {
            let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') else {
                if self.buffer.len() > LENGTH_MAX_DIGITS {
                    return Err(bad_length(&self.buffer));
                }
                return Ok(records);
            };
            let prefix = &self.buffer[..newline];
            if prefix.is_empty()
                || prefix.len() > LENGTH_MAX_DIGITS
                || !prefix.iter().all(u8::is_ascii_digit)
            {
                return Err(bad_length(prefix));
            }
            let length: usize = std::str::from_utf8(prefix)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad_length(prefix))?;
            if length > RECORD_MAX_BYTES {
                return Err(RecordIoError::TooLarge(length));
            }
            let end = newline + 1 + length;
            if self.buffer.len() < end {
                return Ok(records);
            }
            records.push(self.buffer[newline + 1..end].to_vec());
            self.buffer.drain(..end);
        }
    }

    /// Bytes of an incomplete record still held.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }
}

fn bad_length(prefix: &[u8]) -> RecordIoError {
    RecordIoError::BadLength(crate::json::quote(&String::from_utf8_lossy(prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_record() {
        assert_eq!(encode(b"{}"), b"2\n{}");
        let mut d = Decoder::new();
        assert_eq!(d.feed(b"2\n{}5\nhel").unwrap(), vec![b"{}".to_vec()]);
        assert_eq!(d.feed(b"lo").unwrap(), vec![b"hello".to_vec()]);
        assert_eq!(d.pending_bytes(), 0);
    }

    #[test]
    fn refuses_garbage_and_huge_lengths() {
        assert!(matches!(
            Decoder::new().feed(b"x\n{}"),
            Err(RecordIoError::BadLength(_))
        ));
        assert!(matches!(
            Decoder::new().feed(b"\n{}"),
            Err(RecordIoError::BadLength(_))
        ));
        assert!(matches!(
            Decoder::new().feed(b"99999999999"),
            Err(RecordIoError::BadLength(_))
        ));
        assert_eq!(
            Decoder::new().feed(b"999999999\n"),
            Err(RecordIoError::TooLarge(999_999_999))
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_records_back(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in 1usize..17,
        ) {
            let stream: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                got.extend(d.feed(piece).unwrap());
            }
            prop_assert_eq!(got, records);
            prop_assert_eq!(d.pending_bytes(), 0);
        }
    }
}
