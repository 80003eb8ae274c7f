//! The protobuf codec every generated client and server uses: prost's, with smaller
//! buffers than tonic's default.
//!
//! Why: tonic allocates the codec's buffer size up front for every call and keeps it for
//! the life of a stream. At the default 8 KiB, a master holding one command stream open
//! per agent spent 8 KiB of its ~14 KiB per agent on an encode buffer that carries
//! messages of a few hundred bytes, and every unary call in flight held another 8 KiB
//! (twice: one to decode the request, one to encode the reply). Buffers still grow to fit
//! any message (prost reserves what it needs), so only the first allocation shrinks.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial size of a call's encode and decode buffers. Most messages of the protocol
/// (status updates, acknowledgements, agent commands, heartbeats) fit in it.
pub const BUFFER_SIZE: usize = 512;
/// Bytes a streaming call encodes before it yields to the runtime (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// `tonic_prost::ProstCodec` with `BUFFER_SIZE` buffers; set as the codec of every
/// service in `build.rs`.
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

/// The buffer settings of every call.
pub fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use tonic::codec::{Decoder, Encoder};

    #[test]
    fn uses_small_buffers_for_both_directions() {
        // `BufferSettings` shows its fields only through `Debug`.
        let want = format!("{:?}", buffer_settings());
        assert!(
            want.contains(&format!("buffer_size: {BUFFER_SIZE}")),
            "{want}"
        );
        let mut c = SmallBufferCodec::<v1::TaskStatus, v1::TaskStatus>::default();
        assert_eq!(format!("{:?}", c.encoder().buffer_settings()), want);
        assert_eq!(format!("{:?}", c.decoder().buffer_settings()), want);
    }
}
