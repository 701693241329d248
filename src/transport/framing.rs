//! Frames on a QUIC stream: `tag: u8`, `len: u32 BE`, `len` bytes.
//!
//! ```text
//! tag 0  JSON message (a Request or a Reply)
//! tag 1  stdout bytes        tag 2  stderr bytes
//! tag 3  exit code, i32 BE   tag 4  raw data (image upload)
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted; larger data is split by the sender.
pub const MAX_FRAME: usize = 16 << 20;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON message.
    Json(Vec<u8>),
    /// Process output.
    Stdout(Vec<u8>),
    /// Process error output.
    Stderr(Vec<u8>),
    /// The process's exit code; the last frame of an exec.
    Exit(i32),
    /// Opaque payload.
    Data(Vec<u8>),
}

/// Reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a frame.
    #[error("bad frame: {0}")]
    Bad(String),
    /// A JSON frame did not decode.
    #[error("bad message: {0}")]
    Json(#[from] serde_json::Error),
}

impl Frame {
    /// Encodes a message as a JSON frame.
    pub fn json<T: serde::Serialize>(value: &T) -> Frame {
        Frame::Json(serde_json::to_vec(value).expect("wire types serialise"))
    }

    /// Decodes a JSON frame; any other frame is an error.
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, FrameError> {
        match self {
            Frame::Json(b) => Ok(serde_json::from_slice(&b)?),
            other => Err(FrameError::Bad(format!("expected a message, got {other:?}"))),
        }
    }
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> Result<(), FrameError> {
    let exit;
    let (tag, payload): (u8, &[u8]) = match frame {
        Frame::Json(b) => (0, b),
        Frame::Stdout(b) => (1, b),
        Frame::Stderr(b) => (2, b),
        Frame::Exit(c) => {
            exit = c.to_be_bytes();
            (3, &exit)
        }
        Frame::Data(b) => (4, b),
    };
    if payload.len() > MAX_FRAME {
        return Err(FrameError::Bad(format!("frame of {} bytes exceeds {MAX_FRAME}", payload.len())));
    }
    let mut head = [0u8; 5];
    head[0] = tag;
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    Ok(())
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes(head[1..].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Bad(format!("frame of {len} bytes exceeds {MAX_FRAME}")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(match head[0] {
        0 => Frame::Json(payload),
        1 => Frame::Stdout(payload),
        2 => Frame::Stderr(payload),
        3 => {
            let b: [u8; 4] = payload
                .try_into()
                .map_err(|_| FrameError::Bad("exit frame is not 4 bytes".into()))?;
            Frame::Exit(i32::from_be_bytes(b))
        }
        4 => Frame::Data(payload),
        t => return Err(FrameError::Bad(format!("unknown frame tag {t}"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let frames = vec![
            Frame::Json(b"{}".to_vec()),
            Frame::Stdout(b"hi".to_vec()),
            Frame::Exit(-3),
            Frame::Data(vec![0; 70000]),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            write_frame(&mut buf, f).await.unwrap();
        }
        let mut r = &buf[..];
        for f in frames {
            assert_eq!(read_frame(&mut r).await.unwrap(), Some(f));
        }
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_and_unknown_frames_are_refused() {
        let mut r: &[u8] = &[9, 0, 0, 0, 0];
        assert!(read_frame(&mut r).await.is_err());
        let mut r: &[u8] = &[0, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut r).await.is_err());
    }
}
