//! The request-response wire format: a 4-byte big-endian length, then that many bytes.
//!
//! This module owns framing only; the bytes inside are opaque to it. It must never allocate
//! for a length it has not checked against its bound (a peer's length prefix is a claim,
//! not a fact), nor, given a read budget, for more bytes at once than the budget holds.

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use tokio::sync::Semaphore;

/// The unit of a read budget's permits.
const READ_BUDGET_UNIT: usize = 1024;

/// Length-prefixed opaque bytes, with one size bound for requests and responses alike.
#[derive(Clone, Debug)]
pub struct BytesCodec {
    bytes_max: usize,
    /// Shared by every stream that reads with a clone of this codec: KiB of frames being
    /// read at once. A frame waits for its share before its buffer is allocated, so many
    /// streams each announcing a large frame cannot each hold one.
    reading: Option<Arc<Semaphore>>,
}

impl BytesCodec {
    pub fn new(bytes_max: usize) -> BytesCodec {
        BytesCodec {
            bytes_max,
            reading: None,
        }
    }

    /// A read budget of `bytes` (at least one frame of `bytes_max`), to share between
    /// codecs with [`BytesCodec::with_read_budget`].
    pub fn read_budget(bytes: usize, bytes_max: usize) -> Arc<Semaphore> {
        let units = bytes.max(bytes_max).div_ceil(READ_BUDGET_UNIT);
        Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS)))
    }

    /// Frames read by this codec and its clones wait for their bytes in `budget`.
    pub fn with_read_budget(bytes_max: usize, budget: Arc<Semaphore>) -> BytesCodec {
        BytesCodec {
            bytes_max,
            reading: Some(budget),
        }
    }

    /// Reads the first frame of `stream` as a libp2p stream would: the frame and the bytes
    /// it took. For checks outside the network (the fuzz targets), which hold bytes, not
    /// streams.
    pub fn read_frame(&self, stream: &[u8]) -> io::Result<(Vec<u8>, usize)> {
        let mut io = futures::io::Cursor::new(stream);
        let frame = futures::executor::block_on(self.read(&mut io))?;
        Ok((frame, io.position() as usize))
    }

    /// The bytes [`BytesCodec::read_frame`] reads back as `frame`.
    pub fn write_frame(&self, frame: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut io = futures::io::Cursor::new(Vec::new());
        futures::executor::block_on(self.write(&mut io, frame))?;
        Ok(io.into_inner())
    }

    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.bytes_max {
            return Err(too_large(len, self.bytes_max));
        }
        // Held until the frame is read whole; the queue budgets take over from there. An
        // empty frame (the acknowledgement of every direct message) holds nothing.
        let _share = match &self.reading {
            Some(budget) if len > 0 => {
                let units = u32::try_from(len.div_ceil(READ_BUDGET_UNIT))
                    .map_err(|_| too_large(len, self.bytes_max))?;
                Some(
                    Arc::clone(budget)
                        .acquire_many_owned(units)
                        .await
                        .map_err(|_| io::Error::other("the read budget is closed"))?,
                )
            }
            _ => None,
        };
        let mut bytes = vec![0u8; len];
        io.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    async fn write<T: AsyncWrite + Unpin + Send>(
        &self,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        // Refuse to send what the peer (configured like us) would refuse to read.
        if bytes.len() > self.bytes_max {
            return Err(too_large(bytes.len(), self.bytes_max));
        }
        let len = u32::try_from(bytes.len()).map_err(|_| too_large(bytes.len(), self.bytes_max))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }
}

/// The error a too-large frame gives; `InvalidData` is how the service tells a misbehaving
/// peer from a broken connection.
fn too_large(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("message of {len} bytes is over the limit of {max} bytes"),
    )
}

impl libp2p::request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused_before_reading() {
        let codec = BytesCodec::new(8);
        let mut wire = Cursor::new(Vec::new());
        block_on(codec.write(&mut wire, b"hello".to_vec())).unwrap();
        let mut wire = Cursor::new(wire.into_inner());
        assert_eq!(block_on(codec.read(&mut wire)).unwrap(), b"hello");

        // A prefix claiming 4 GiB with no body: refused on the prefix alone.
        let mut wire = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let err = block_on(codec.read(&mut wire)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let err = block_on(codec.write(&mut Cursor::new(Vec::new()), vec![0; 9])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Truncated body: an I/O error, not a panic.
        let mut wire = Cursor::new(vec![0, 0, 0, 5, 1, 2]);
        assert!(block_on(codec.read(&mut wire)).is_err());
    }

    #[test]
    fn a_frame_waits_for_its_share_of_the_read_budget_and_gives_it_back() {
        let budget = BytesCodec::read_budget(4 * 1024, 4 * 1024);
        let codec = BytesCodec::with_read_budget(4 * 1024, Arc::clone(&budget));
        let mut wire = Cursor::new(Vec::new());
        block_on(codec.write(&mut wire, vec![1; 3000])).unwrap();
        let frame = wire.into_inner();
        // Another stream holds all but one KiB: the 3,000-byte frame must wait.
        let held = block_on(Arc::clone(&budget).acquire_many_owned(3)).unwrap();
        let mut wire = Cursor::new(frame);
        let mut reading = Box::pin(codec.read(&mut wire));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(reading.as_mut().poll(&mut cx).is_pending());
        drop(held);
        let std::task::Poll::Ready(read) = reading.as_mut().poll(&mut cx) else {
            panic!("still waiting with the budget free");
        };
        assert_eq!(read.unwrap(), vec![1; 3000]);
        assert_eq!(budget.available_permits(), 4);
    }
}
