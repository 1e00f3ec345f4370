//! The input layout the streaming targets share: a byte `k` whose low three bits say how many
//! chunk-size bytes follow, the sizes, then the stream.

/// Splits `data` into `k`, the chunk sizes and the stream.
pub fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&k, rest) = data.split_first()?;
    let (sizes, stream) = rest.split_at(usize::from(k & 7).min(rest.len()));
    Some((k, sizes, stream))
}

/// The stream in pieces: each size byte `b` is a piece of `b + 1` bytes, used in turn and
/// repeated; no sizes means the whole stream at once.
pub fn pieces<'a>(stream: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut size = sizes.iter().map(|&b| usize::from(b) + 1).cycle();
    let mut rest = stream;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = size.next().unwrap_or(rest.len()).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        Some(piece)
    })
}
