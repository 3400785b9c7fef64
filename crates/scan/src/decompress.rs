//! Content-Encoding decoders for scanning (`gzip`, `deflate`, `br`, `zstd`), push-based so a
//! body is decoded chunk by chunk as it streams, with an output budget against bombs.

use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
    #[error("the {encoding} body does not decode: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
}

pub enum Decompressor {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    /// HTTP's "deflate" is zlib-wrapped by the standard and raw by some servers; the first
    /// bytes tell which.
    Deflate(Option<DeflateKind>, Vec<u8>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<ruzstd::decoding::FrameDecoder>, Vec<u8>, bool),
}

pub enum DeflateKind {
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
}

/// Bytes of zstd input gathered before the first decode call (a whole frame header).
const ZSTD_HEADER_MAX: usize = 18;

impl Decompressor {
    /// A decoder for a `Content-Encoding` value; `None` for identity.
    pub fn for_encoding(encoding: &str) -> Result<Option<Self>, DecompressError> {
        let e = encoding.trim().to_ascii_lowercase();
        Ok(Some(match e.as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Decompressor::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Decompressor::Deflate(None, Vec::new()),
            "br" => Decompressor::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                8192,
            ))),
            "zstd" => Decompressor::Zstd(
                Box::new(ruzstd::decoding::FrameDecoder::new()),
                Vec::new(),
                false,
            ),
            _ => return Err(DecompressError::Unsupported(encoding.to_string())),
        }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Decompressor::Gzip(_) => "gzip",
            Decompressor::Deflate(..) => "deflate",
            Decompressor::Brotli(_) => "br",
            Decompressor::Zstd(..) => "zstd",
        }
    }

    /// Decodes `input`, appending to `out`. `last` flushes what is buffered.
    pub fn feed(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        let name = self.name();
        let corrupt = |reason: String| DecompressError::Corrupt {
            encoding: name,
            reason,
        };
        match self {
            Decompressor::Gzip(d) => {
                d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                if last {
                    d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                }
                out.append(d.get_mut());
            }
            Decompressor::Deflate(kind, pending) => {
                if kind.is_none() {
                    pending.extend_from_slice(input);
                    if pending.len() < 2 && !last {
                        return Ok(());
                    }
                    // A zlib header: CMF with method 8 and (CMF*256 + FLG) % 31 == 0.
                    let zlib = pending.len() >= 2
                        && pending[0] & 0x0F == 8
                        && (u16::from(pending[0]) << 8 | u16::from(pending[1])) % 31 == 0;
                    *kind = Some(if zlib {
                        DeflateKind::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        DeflateKind::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
                    });
                    let buffered = std::mem::take(pending);
                    return self.feed(&buffered, last, out);
                }
                match kind.as_mut().expect("set above") {
                    DeflateKind::Zlib(d) => {
                        d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                        if last {
                            d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                        }
                        out.append(d.get_mut());
                    }
                    DeflateKind::Raw(d) => {
                        d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                        if last {
                            d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                        }
                        out.append(d.get_mut());
                    }
                }
            }
            Decompressor::Brotli(d) => {
                d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                if last {
                    d.flush().map_err(|e| corrupt(e.to_string()))?;
                }
                out.append(d.get_mut());
            }
            Decompressor::Zstd(d, pending, started) => {
                pending.extend_from_slice(input);
                if !*started && pending.len() < ZSTD_HEADER_MAX && !last {
                    return Ok(());
                }
                *started = true;
                let mut target = vec![0u8; 128 * 1024];
                loop {
                    let (read, written) = d
                        .decode_from_to(pending, &mut target)
                        .map_err(|e| corrupt(e.to_string()))?;
                    pending.drain(..read);
                    out.extend_from_slice(&target[..written]);
                    if read == 0 && written == 0 {
                        break;
                    }
                    if d.is_finished() && !pending.is_empty() {
                        // Concatenated frames.
                        **d = ruzstd::decoding::FrameDecoder::new();
                        if pending.len() < ZSTD_HEADER_MAX && !last {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(encoding: &str, compressed: &[u8], expected: &[u8]) {
        for chunk_size in [1, 7, 100, compressed.len().max(1)] {
            let mut d = Decompressor::for_encoding(encoding).unwrap().unwrap();
            let mut out = Vec::new();
            let chunks: Vec<&[u8]> = compressed.chunks(chunk_size).collect();
            for (i, c) in chunks.iter().enumerate() {
                d.feed(c, i + 1 == chunks.len(), &mut out).unwrap();
            }
            assert_eq!(out, expected, "{encoding} in chunks of {chunk_size}");
        }
    }

    #[test]
    fn gzip_and_deflate_decode_in_any_chunking() {
        let text: Vec<u8> = b"my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk ".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        roundtrip("gzip", &gz.finish().unwrap(), &text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        roundtrip("deflate", &z.finish().unwrap(), &text);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        roundtrip("deflate", &raw.finish().unwrap(), &text);
    }

    #[test]
    fn unknown_encodings_are_refused() {
        assert!(Decompressor::for_encoding("compress").is_err());
        assert!(Decompressor::for_encoding("identity").unwrap().is_none());
    }
}
