//! Putting text tiles on the finished canvas: [`tiles_stay_on_top`] checks that nothing
//! painted after a text's placeholder reaches into its tile (else the rasterizer draws that
//! render's texts in place), and [`draw_tile_over`] blends a tile over the canvas faster than
//! tiny-skia's general pipeline would. The rasterizer (`svg.rs`) calls both once the tree with
//! placeholders is drawn; the tiles come from [`super::text_tiles`].

use super::text_tiles::PLACEHOLDER_ID_PREFIX;
use super::tile_drawing::Tile;
use resvg::tiny_skia::{IntRect, Pixmap, Transform};
use resvg::usvg;
use std::sync::Arc;

/// Draws `tile` unscaled over `canvas` at its place (source-over on premultiplied pixels).
/// Most of a text tile is empty, so this skips what tiny-skia's general pattern pipeline
/// (`draw_pixmap`) would blend pixel by pixel; a test holds the two within a level.
pub(crate) fn draw_tile_over(canvas: &mut Pixmap, tile: &Tile) {
    let (canvas_width, canvas_height) = (canvas.width() as i32, canvas.height() as i32);
    let (tile_width, tile_height) = (tile.pixmap.width() as i32, tile.pixmap.height() as i32);
    let columns = (-tile.x).max(0)..(canvas_width - tile.x).min(tile_width);
    let rows = (-tile.y).max(0)..(canvas_height - tile.y).min(tile_height);
    if columns.is_empty() {
        return;
    }
    let source = tile.pixmap.data();
    let target = canvas.data_mut();
    for row in rows {
        let from = ((row * tile_width + columns.start) * 4) as usize;
        let to = (((tile.y + row) * canvas_width + tile.x + columns.start) * 4) as usize;
        let length = columns.len() * 4;
        let pixels = source[from..from + length].chunks_exact(4);
        for (src, dst) in pixels.zip(target[to..to + length].chunks_exact_mut(4)) {
            match src[3] {
                0 => {}
                255 => dst.copy_from_slice(src),
                alpha => {
                    let keep = 255 - u32::from(alpha);
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = (u32::from(*s) + (u32::from(*d) * keep + 127) / 255) as u8;
                    }
                }
            }
        }
    }
}

/// Whether drawing the tiles after everything else paints the same as drawing each at its
/// placeholder: true when nothing painted after a placeholder reaches into its tile's pixels.
/// (usvg turns each placeholder into a group holding one hidden image, under its id.)
pub(crate) fn tiles_stay_on_top(
    tree: &usvg::Tree,
    tiles: &[Arc<Tile>],
    transform: Transform,
) -> bool {
    let mut placed: Vec<IntRect> = Vec::with_capacity(tiles.len());
    for node in tree.root().children() {
        let placeholder = match node {
            usvg::Node::Group(group) => group
                .id()
                .strip_prefix(PLACEHOLDER_ID_PREFIX)
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| tiles.get(n)),
            _ => None,
        };
        if let Some(tile) = placeholder {
            if let Some(rect) =
                IntRect::from_xywh(tile.x, tile.y, tile.pixmap.width(), tile.pixmap.height())
            {
                placed.push(rect);
            }
            continue;
        }
        if placed.is_empty() {
            continue;
        }
        // Where this node may paint, in pixels: its stroke box and its layer box (which
        // holds filters), rounded out by a pixel for anti-aliasing.
        let stroke = node.abs_stroke_bounding_box();
        let reach = match node.abs_layer_bounding_box() {
            Some(layer) => stroke.join(&layer.to_rect()).unwrap_or(stroke),
            None => stroke,
        };
        let Some(reach) = reach.transform(transform).and_then(|r| {
            IntRect::from_ltrb(
                r.left().floor() as i32 - 1,
                r.top().floor() as i32 - 1,
                r.right().ceil() as i32 + 1,
                r.bottom().ceil() as i32 + 1,
            )
        }) else {
            return false;
        };
        if placed.iter().any(|tile| tile.intersect(&reach).is_some()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{max_diff, plain_texts, rasterizer};
    use super::*;

    #[test]
    fn texts_under_later_shapes_are_drawn_in_place() {
        // The rectangle drawn after the first text covers part of it: drawing tiles last
        // would put the text on top, so the render draws its texts in place.
        let svg = plain_texts(0.0).replace(
            "</svg>",
            r##"<rect x="20" y="12" width="40" height="12" fill="#f59e0b"/></svg>"##,
        );
        let rasterizer = rasterizer();
        for scale in [1, 2] {
            let in_place = rasterizer
                .rasterize_inner(&svg, 300, 120, scale, Arc::default(), false)
                .unwrap();
            for _ in 0..3 {
                let render = rasterizer
                    .rasterize_inner(&svg, 300, 120, scale, Arc::default(), true)
                    .unwrap();
                assert_eq!(max_diff(&render, &in_place), 0, "scale {scale}");
            }
        }
    }

    #[test]
    fn tiles_blend_like_tiny_skia() {
        let mut canvas = Pixmap::new(40, 30).unwrap();
        for (i, pixel) in canvas.pixels_mut().iter_mut().enumerate() {
            let v = (i * 37 % 256) as u8;
            *pixel =
                resvg::tiny_skia::PremultipliedColorU8::from_rgba(v / 2, v / 3, v / 4, v / 2 + 100)
                    .unwrap();
        }
        let mut tile = Pixmap::new(25, 20).unwrap();
        for (i, pixel) in tile.pixels_mut().iter_mut().enumerate() {
            let alpha = [0u8, 255, 1, 128, 200, 37][i % 6];
            *pixel = resvg::tiny_skia::ColorU8::from_rgba(200, 30, 90, alpha).premultiply();
        }
        // Partly off the canvas on two sides.
        let tile = Tile {
            pixmap: tile,
            x: 25,
            y: -5,
        };
        let mut ours = canvas.clone();
        draw_tile_over(&mut ours, &tile);
        let mut theirs = canvas.clone();
        theirs.draw_pixmap(
            tile.x,
            tile.y,
            tile.pixmap.as_ref(),
            &resvg::tiny_skia::PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        assert!(
            max_diff(&ours, &theirs) <= 1,
            "{}",
            max_diff(&ours, &theirs)
        );
        assert!(max_diff(&ours, &canvas) > 100, "the tile was drawn");
    }
}
