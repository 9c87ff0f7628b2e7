//! Palette order: the colours the later frames use most come first.
//!
//! A frame's LZW codes start one bit wider than its highest palette index needs (the `gif`
//! crate picks the smallest code size per frame). The later frames of a countdown redraw a few
//! digits in a handful of colours, while the first frame holds every colour of the picture, so
//! ranking the palette by use in the later frames writes those frames with narrower codes. The
//! order is taken from the planned frames, which are the same whichever way the frames were
//! rendered, so the bytes are too.

use super::frame_plan::PlannedFrame;
use super::palette::Palette;

/// Renumbers `pal` and every frame's indices, most used in frames after the first first.
pub(super) fn order_by_later_use(pal: &mut Palette, frames: &mut [PlannedFrame]) {
    if frames.len() < 2 {
        return;
    }
    let slots = pal.rgb.len() / 3;
    let mut uses = [0u64; 256];
    for f in frames.iter().skip(1) {
        f.pixels.iter().for_each(|&i| uses[usize::from(i)] += 1);
    }
    let mut order: Vec<usize> = (0..slots).collect();
    // Stable: colours no later frame uses keep their relative order.
    order.sort_by_key(|&i| std::cmp::Reverse(uses[i]));
    let mut rank = [0u8; 256];
    for (new, &old) in order.iter().enumerate() {
        // At most 256 slots: the palette has at most 255 colours and the transparent index.
        rank[old] = new as u8;
    }
    let mut rgb = vec![0; pal.rgb.len()];
    for (old, colour) in pal.rgb.chunks_exact(3).enumerate() {
        let at = usize::from(rank[old]) * 3;
        rgb[at..at + 3].copy_from_slice(colour);
    }
    pal.rgb = rgb;
    pal.transparent = rank[usize::from(pal.transparent)];
    let renumber = |pixels: &mut [u8]| pixels.iter_mut().for_each(|i| *i = rank[usize::from(*i)]);
    for f in frames.iter_mut() {
        renumber(&mut f.pixels);
    }
}

#[cfg(test)]
mod tests {
    use crate::gif::decode::decode;
    use crate::gif::testkit::{frame, solid};
    use crate::gif::{encode_animation, Looping, Patch};

    /// The highest palette index each frame of `gif` uses.
    fn max_indices(gif: &[u8]) -> Vec<u8> {
        let mut opts = ::gif::DecodeOptions::new();
        opts.set_color_output(::gif::ColorOutput::Indexed);
        let mut d = opts.read_info(gif).expect("reads");
        let mut out = Vec::new();
        while let Some(f) = d.read_next_frame().expect("frame") {
            out.push(f.buffer.iter().copied().max().unwrap_or(0));
        }
        out
    }

    #[test]
    fn colours_of_later_frames_get_the_low_indices() {
        // A first frame of 200 colours, then frames that only use two of them.
        let first: Vec<u8> = (0..200u8).flat_map(|i| [i, 255 - i, 7, 255]).collect();
        let whole = Patch {
            x: 0,
            y: 0,
            width: 200,
            height: 1,
            rgba: first.clone(),
        };
        let mut frames = vec![frame(whole, 10)];
        for k in 0..4u32 {
            let colour = if k % 2 == 0 {
                [150, 105, 7, 255]
            } else {
                [180, 75, 7, 255]
            };
            frames.push(frame(solid(10 + k, 0, 3, 1, colour), 10));
        }
        let gif = encode_animation(200, 1, &frames, Looping::Once).expect("encodes");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!(d.canvases[0], first, "the first frame keeps its colours");
        let (a, b) = ([150, 105, 7, 255], [180, 75, 7, 255]);
        let want: Vec<u8> = [a, b, a, b, b, b].concat();
        assert_eq!(&d.canvases[4][10 * 4..16 * 4], &want[..]);
        let max = max_indices(&gif.bytes);
        assert_eq!(max[0], 199, "the first frame uses every colour");
        assert!(max[1..].iter().all(|&m| m <= 1), "later frames: {max:?}");
    }
}
