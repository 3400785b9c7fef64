//! WebSocket messages after the upgrade: each frame is read, its payload scanned like a
//! body (outbound: credentials; inbound: credentials and injections), and written on —
//! unchanged, redacted (re-framed with the new length), or not at all when a finding
//! blocks, in which case both sides get a Close frame with status 1008 (policy violation).
//!
//! Frames up to `max_hold_bytes` are held whole until scanned, so a blocked message sends
//! nothing. A longer frame streams on, each piece scanned before it is written; a block or
//! a secret to redact there (its length is already on the wire) closes the connection.
//! Compressed frames (permessage-deflate) cannot be read: the upgrade request offers no
//! extensions, and a compressed frame arriving anyway closes the connection (fail closed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

use crate::config::DetectAction;
use crate::detect::{BodyScan, Detection, Detector, Direction, Location};
use crate::pipeline::decide;
use crate::pipeline::{FlowTracker, Side};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
/// "Policy violation" (RFC 6455 7.4.1).
const CLOSE_POLICY: u16 = 1008;
const READ_BYTES: usize = 16 * 1024;

/// Why a direction stopped.
enum End {
    /// The peer closed or the connection failed: the other direction may go on.
    Closed,
    /// A finding (or an unreadable frame) ends the whole connection.
    Refused(String),
}

/// The header of one frame (public for the fuzz targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHead {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

impl FrameHead {
    /// Parses a header from the start of `buf`: `(head, header length)`, or `None` when
    /// more bytes are needed.
    pub fn parse(buf: &[u8]) -> Option<(FrameHead, usize)> {
        if buf.len() < 2 {
            return None;
        }
        let (b0, b1) = (buf[0], buf[1]);
        let mut at = 2;
        let len = match b1 & 0x7f {
            126 => {
                let bytes = buf.get(2..4)?;
                at = 4;
                u64::from(u16::from_be_bytes([bytes[0], bytes[1]]))
            }
            127 => {
                let bytes = buf.get(2..10)?;
                at = 10;
                u64::from_be_bytes(bytes.try_into().ok()?)
            }
            n => u64::from(n),
        };
        let mask = if b1 & 0x80 != 0 {
            let key = buf.get(at..at + 4)?;
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Some((
            FrameHead {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x7,
                opcode: b0 & 0x0f,
                mask,
                len,
            },
            at,
        ))
    }

    /// The header bytes for a frame like this one carrying `len` payload bytes.
    pub fn encode(&self, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(14);
        out.push(((self.fin as u8) << 7) | (self.rsv << 4) | self.opcode);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        out
    }
}

/// XORs `data` with the mask key, `offset` bytes into the payload.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: u64) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[((offset + i as u64) % 4) as usize];
    }
}

/// One direction's scanning state: the message being received.
struct MessageScan {
    scan: Option<BodyScan>,
    /// Payload bytes of the current message fed so far (redaction offsets are per message).
    offset: u64,
    /// The end of the previous message (what leaves: a token may be split across two).
    previous: Vec<u8>,
    /// The current message is new: its first frame is checked together with `previous`.
    fresh: bool,
}

/// How much of a message's end is kept to find a credential split across two messages.
const MESSAGE_TAIL: usize = 512;

/// Where the text of a message starts after a short label that numbers or names the piece
/// (`part2: `, `chunk 2/3 = `, `[2] `), if it has one: a token sent in labelled pieces
/// joins the previous message there.
pub fn label_end(message: &[u8]) -> Option<usize> {
    const LONGEST: usize = 24;
    let bracketed = message.first() == Some(&b'[');
    let close = if bracketed { b']' } else { b':' };
    let at = message
        .iter()
        .take(LONGEST)
        .position(|&b| b == close || (!bracketed && b == b'='))?;
    let label = &message[usize::from(bracketed)..at];
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b" _-#./()".contains(b);
    if label.is_empty() || !label.iter().all(allowed) || !label.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let rest = &message[at + 1..];
    let blank = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
    (blank < rest.len()).then_some(at + 1 + blank)
}

/// One direction's reading side, and where its frames go.
struct FrameIo<'a, R, F> {
    from: &'a mut ReadHalf<R>,
    buf: &'a mut Vec<u8>,
    side: Side,
    send: &'a F,
}

impl<R, F, Fut> FrameIo<'_, R, F>
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    /// Writes `bytes` on and counts them into the flow record.
    async fn write(&mut self, bytes: Vec<u8>, tracker: &FlowTracker) -> Result<(), End> {
        let n = bytes.len() as u64;
        if !(self.send)(bytes).await {
            return Err(End::Closed);
        }
        tracker.add_bytes(self.side, n);
        Ok(())
    }
}

struct Relay<C, U> {
    detector: Arc<Detector>,
    tracker: Arc<FlowTracker>,
    hold: u64,
    client_w: Mutex<WriteHalf<C>>,
    upstream_w: Mutex<WriteHalf<U>>,
    started: Instant,
    last_activity: AtomicU64,
}

/// Relays WebSocket frames between the client and the upstream until both close, a
/// finding ends the connection, or nothing moves for `idle`. Byte counts (as written) go
/// to the flow record.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    detector: Arc<Detector>,
    tracker: Arc<FlowTracker>,
    idle: Duration,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let relay = Relay {
        hold: detector.settings.max_hold_bytes.max(1) as u64,
        detector,
        tracker,
        client_w: Mutex::new(client_w),
        upstream_w: Mutex::new(upstream_w),
        started: Instant::now(),
        last_activity: AtomicU64::new(0),
    };
    let both = async {
        let out = relay.pump_outbound(client_r);
        let inb = relay.pump_inbound(upstream_r);
        tokio::pin!(out, inb);
        // Either direction refusing ends both; a plain close lets the other finish.
        let refused = tokio::select! {
            end = &mut out => match end {
                End::Refused(reason) => Some(reason),
                End::Closed => match inb.await { End::Refused(r) => Some(r), End::Closed => None },
            },
            end = &mut inb => match end {
                End::Refused(reason) => Some(reason),
                End::Closed => match out.await { End::Refused(r) => Some(r), End::Closed => None },
            },
        };
        if let Some(reason) = refused {
            relay.close_both(&reason).await;
        }
    };
    let watchdog = async {
        let tick = (idle / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(tick).await;
            let last = Duration::from_millis(relay.last_activity.load(Ordering::Relaxed));
            if relay.started.elapsed().saturating_sub(last) >= idle {
                return;
            }
        }
    };
    tokio::select! {
        _ = both => {}
        _ = watchdog => {}
    }
}

impl<C, U> Relay<C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    async fn pump_outbound(&self, from: ReadHalf<C>) -> End {
        let scans = self.detector.scans_outbound();
        self.pump(from, Direction::Outbound, scans, |bytes| async move {
            let mut w = self.upstream_w.lock().await;
            w.write_all(&bytes).await.is_ok() && w.flush().await.is_ok()
        })
        .await
    }

    async fn pump_inbound(&self, from: ReadHalf<U>) -> End {
        let scans = self.detector.scans_inbound();
        self.pump(from, Direction::Inbound, scans, |bytes| async move {
            let mut w = self.client_w.lock().await;
            w.write_all(&bytes).await.is_ok() && w.flush().await.is_ok()
        })
        .await
    }

    /// Reads frames from `from`, scans data frames and writes them on with `send`.
    async fn pump<R, F, Fut>(
        &self,
        mut from: ReadHalf<R>,
        direction: Direction,
        scans: bool,
        send: F,
    ) -> End
    where
        R: AsyncRead + Unpin,
        F: Fn(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let side = match direction {
            Direction::Outbound => Side::Request,
            Direction::Inbound => Side::Response,
        };
        let mut buf: Vec<u8> = Vec::with_capacity(READ_BYTES);
        let mut message = MessageScan {
            scan: None,
            offset: 0,
            previous: Vec::new(),
            fresh: false,
        };
        loop {
            // A frame header.
            let (head, header_len) = loop {
                if let Some(parsed) = FrameHead::parse(&buf) {
                    break parsed;
                }
                if !self.read_more(&mut from, &mut buf).await {
                    return End::Closed;
                }
            };
            buf.drain(..header_len);
            let is_data = matches!(head.opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY);
            let mut io = FrameIo {
                from: &mut from,
                buf: &mut buf,
                side,
                send: &send,
            };
            if !scans || !is_data {
                // Relayed as it is (control frames, or nothing to scan this way).
                if let Err(end) = self.pass_frame(&head, &mut io).await {
                    return end;
                }
                if head.opcode == OP_CLOSE {
                    // The close handshake finishes in the other direction; this one is done.
                    return End::Closed;
                }
                continue;
            }
            if head.rsv & 0x4 != 0 {
                return End::Refused(
                    "compressed WebSocket frame (permessage-deflate) cannot be inspected".into(),
                );
            }
            if head.opcode != OP_CONTINUATION || message.scan.is_none() {
                let previous = std::mem::take(&mut message.previous);
                message = MessageScan {
                    previous,
                    fresh: true,
                    scan: Some(
                        BodyScan::new(
                            self.detector.clone(),
                            direction,
                            None,
                            direction == Direction::Inbound,
                        )
                        .with_families(match direction {
                            Direction::Outbound => self.detector.text_families(false),
                            Direction::Inbound => None,
                        }),
                    ),
                    offset: 0,
                };
            }
            let relayed = if head.len <= self.hold {
                self.held_frame(&head, &mut message, &mut io).await
            } else {
                self.streamed_frame(&head, &mut message, &mut io).await
            };
            if let Err(end) = relayed {
                return end;
            }
            if head.fin {
                message.scan = None;
            }
        }
    }

    /// Relays a frame unchanged, as its bytes arrive.
    async fn pass_frame<R, F, Fut>(
        &self,
        head: &FrameHead,
        io: &mut FrameIo<'_, R, F>,
    ) -> Result<(), End>
    where
        R: AsyncRead + Unpin,
        F: Fn(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut out = head.encode(head.len);
        let mut left = head.len;
        loop {
            let take = left.min(io.buf.len() as u64) as usize;
            out.extend(io.buf.drain(..take));
            left -= take as u64;
            if !out.is_empty() {
                io.write(std::mem::take(&mut out), &self.tracker).await?;
            }
            if left == 0 {
                return Ok(());
            }
            if !self.read_more(io.from, io.buf).await {
                return Err(End::Closed);
            }
        }
    }

    /// A frame up to `max_hold_bytes`: held whole, scanned, then written (possibly
    /// redacted) or refused.
    async fn held_frame<R, F, Fut>(
        &self,
        head: &FrameHead,
        message: &mut MessageScan,
        io: &mut FrameIo<'_, R, F>,
    ) -> Result<(), End>
    where
        R: AsyncRead + Unpin,
        F: Fn(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        while (io.buf.len() as u64) < head.len {
            if !self.read_more(io.from, io.buf).await {
                return Err(End::Closed);
            }
        }
        let mut payload: Vec<u8> = io.buf.drain(..head.len as usize).collect();
        if let Some(key) = head.mask {
            apply_mask(&mut payload, key, 0);
        }
        if let Err(reason) = self.across_messages(message, &payload, head.fin) {
            return Err(End::Refused(reason));
        }
        let mut payload = match self.scan_piece(message, &payload, head.fin, true) {
            Ok(p) => p.unwrap_or(payload),
            Err(reason) => return Err(End::Refused(reason)),
        };
        if let Some(key) = head.mask {
            apply_mask(&mut payload, key, 0);
        }
        let mut out = head.encode(payload.len() as u64);
        out.extend_from_slice(&payload);
        io.write(out, &self.tracker).await
    }

    /// A longer frame: streamed, each piece scanned before it is written (its length is
    /// already on the wire, so a finding closes the connection).
    async fn streamed_frame<R, F, Fut>(
        &self,
        head: &FrameHead,
        message: &mut MessageScan,
        io: &mut FrameIo<'_, R, F>,
    ) -> Result<(), End>
    where
        R: AsyncRead + Unpin,
        F: Fn(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if !(io.send)(head.encode(head.len)).await {
            return Err(End::Closed);
        }
        let mut done = 0u64;
        while done < head.len {
            if io.buf.is_empty() && !self.read_more(io.from, io.buf).await {
                return Err(End::Closed);
            }
            let take = (head.len - done).min(io.buf.len() as u64) as usize;
            let mut piece: Vec<u8> = io.buf.drain(..take).collect();
            if let Some(key) = head.mask {
                apply_mask(&mut piece, key, done);
            }
            let last = done + take as u64 == head.len && head.fin;
            if let Err(reason) = self.scan_piece(message, &piece, last, false) {
                return Err(End::Refused(reason));
            }
            if let Some(key) = head.mask {
                apply_mask(&mut piece, key, done);
            }
            done += take as u64;
            io.write(piece, &self.tracker).await?;
        }
        Ok(())
    }

    /// A credential split across two messages the agent sends (half a token in one, the
    /// rest in the next): the end of the previous message and the start of this one are
    /// scanned together, and a finding that spans them is a leak like any other.
    fn across_messages(
        &self,
        message: &mut MessageScan,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), String> {
        let outbound = message
            .scan
            .as_ref()
            .is_some_and(|s| s.direction() == Direction::Outbound);
        if !outbound {
            return Ok(());
        }
        let fresh = std::mem::replace(&mut message.fresh, false);
        if fresh && !message.previous.is_empty() {
            let previous = std::mem::take(&mut message.previous);
            let head = &payload[..payload.len().min(MESSAGE_TAIL)];
            // The rest may come after a label of its own ("part2: …", "[2/2] …").
            let starts = [Some(0), label_end(head)];
            for start in starts.into_iter().flatten() {
                let mut joined = previous.clone();
                let seam = joined.len();
                joined.extend_from_slice(&head[start..]);
                let found = self.detector.find_secrets(&joined);
                let spanning: Vec<Detection> = found
                    .iter()
                    .filter(|f| f.start < seam && f.end > seam)
                    .map(|f| {
                        Detection::of(
                            &self.detector,
                            &joined,
                            f,
                            &found,
                            Direction::Outbound,
                            Location::Body,
                        )
                    })
                    .collect();
                if let Some(block) = decide::findings(&self.detector, &self.tracker, &spanning) {
                    return Err(block.reason);
                }
            }
        }
        if fin {
            let keep = payload.len().min(MESSAGE_TAIL);
            message.previous = payload[payload.len() - keep..].to_vec();
        }
        Ok(())
    }

    /// Scans one payload piece of the current message. `Ok(Some(p))`: write `p` instead
    /// (redacted); `Ok(None)`: write it unchanged; `Err`: refuse the connection.
    fn scan_piece(
        &self,
        message: &mut MessageScan,
        piece: &[u8],
        last: bool,
        whole_frame: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let Some(scan) = message.scan.as_mut() else {
            return Ok(None);
        };
        let base = message.offset;
        message.offset += piece.len() as u64;
        let result = scan.feed(piece, last);
        if let Some(block) = decide::findings(&self.detector, &self.tracker, &result.detections) {
            return Err(block.reason);
        }
        // Secrets to replace in this piece (offsets are per message). One begun in a frame
        // already written, or in a frame whose length is already on the wire, cannot be
        // replaced any more.
        let mut spans = Vec::new();
        for f in &result.raw {
            if self.detector.action(f.rule, Direction::Inbound) != DetectAction::Redact {
                continue;
            }
            if !whole_frame || f.start < base {
                return Err(format!(
                    "{} in a WebSocket frame that cannot be redacted any more",
                    self.detector.rule(f.rule).name
                ));
            }
            let end = ((f.end - base) as usize).min(piece.len());
            spans.push(((f.start - base) as usize, end, f.rule));
        }
        if spans.is_empty() {
            return Ok(None);
        }
        spans.sort();
        let mut out = Vec::with_capacity(piece.len() + 32 * spans.len());
        let mut pos = 0;
        for (start, end, rule) in spans {
            if start < pos {
                continue;
            }
            out.extend_from_slice(&piece[pos..start]);
            out.extend_from_slice(format!("[REDACTED:{}]", self.detector.rule(rule).id).as_bytes());
            pos = end;
        }
        out.extend_from_slice(&piece[pos..]);
        Ok(Some(out))
    }

    async fn read_more<R: AsyncRead + Unpin>(
        &self,
        from: &mut ReadHalf<R>,
        buf: &mut Vec<u8>,
    ) -> bool {
        let mut chunk = [0u8; READ_BYTES];
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                self.last_activity
                    .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
                true
            }
        }
    }

    /// Sends Close 1008 both ways (masked towards the upstream, as a client must) and
    /// shuts both connections.
    async fn close_both(&self, reason: &str) {
        let mut text = format!("blocked by airlock: {reason}");
        // A close reason fits in a control frame's 125 bytes, with the 2-byte code.
        while text.len() > 123 {
            text.pop();
        }
        let mut body = CLOSE_POLICY.to_be_bytes().to_vec();
        body.extend_from_slice(text.as_bytes());
        let close = |mask: Option<[u8; 4]>| {
            let head = FrameHead {
                fin: true,
                rsv: 0,
                opcode: OP_CLOSE,
                mask,
                len: body.len() as u64,
            };
            let mut payload = body.clone();
            if let Some(key) = mask {
                apply_mask(&mut payload, key, 0);
            }
            let mut out = head.encode(payload.len() as u64);
            out.extend_from_slice(&payload);
            out
        };
        {
            let mut w = self.client_w.lock().await;
            let _ = w.write_all(&close(None)).await;
            let _ = w.shutdown().await;
        }
        {
            let mut w = self.upstream_w.lock().await;
            let _ = w.write_all(&close(Some(rand_mask()))).await;
            let _ = w.shutdown().await;
        }
    }
}

/// A masking key for frames airlock writes as the client.
fn rand_mask() -> [u8; 4] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0x5a5a_5a5a);
    nanos.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_labels_before_a_piece_are_skipped() {
        assert_eq!(label_end(b"part2: OPQRSTUV"), Some(7));
        assert_eq!(label_end(b"chunk 2/3 = abc"), Some(12));
        assert_eq!(label_end(b"[2] abc"), Some(4));
        assert_eq!(label_end(b"part-2:abc"), Some(7));
        // Not labels: no number, too long, nothing after, a URL.
        assert_eq!(label_end(b"note: abc"), None);
        assert_eq!(label_end(b"this is a long sentence 2: abc"), None);
        assert_eq!(label_end(b"part2:   "), None);
        assert_eq!(label_end(b"https://x/2"), None);
        assert_eq!(label_end(b"OPQRSTUVWXYZ"), None);
    }

    #[test]
    fn headers_round_trip_at_every_length_form() {
        for (len, mask) in [
            (5u64, None),
            (125, Some([1, 2, 3, 4])),
            (126, None),
            (65535, Some([9, 9, 9, 9])),
            (65536, None),
        ] {
            let head = FrameHead {
                fin: true,
                rsv: 0,
                opcode: OP_TEXT,
                mask,
                len,
            };
            let bytes = head.encode(len);
            let (parsed, at) = FrameHead::parse(&bytes).expect("parses");
            assert_eq!(at, bytes.len());
            assert_eq!(parsed.len, len);
            assert_eq!(parsed.mask, mask);
            assert!(parsed.fin);
            assert_eq!(parsed.opcode, OP_TEXT);
            assert!(FrameHead::parse(&bytes[..bytes.len() - 1]).is_none());
        }
    }

    #[test]
    fn masking_is_its_own_inverse_at_any_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let original = b"hello websocket payload".to_vec();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        let (mut a, mut b) = (whole[..7].to_vec(), whole[7..].to_vec());
        apply_mask(&mut a, key, 0);
        apply_mask(&mut b, key, 7);
        assert_eq!([a, b].concat(), original);
    }
}
