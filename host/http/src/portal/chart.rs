//! Bar charts drawn on the server as SVG (no script, no inline style): two
//! series side by side per time bucket, with the figures in a table beside
//! them for whoever does not see the picture.

use super::{pages, rfc3339};

/// Buckets of `bucket` seconds, `count` of them ending with the one `now`
/// falls in: their starts.
pub(super) fn starts(now: i64, bucket: i64, count: i64) -> impl Iterator<Item = i64> {
    let first = (now / bucket - count + 1) * bucket;
    (0..count).map(move |i| first + i * bucket)
}

/// The chart of `points` (`(bucket start, a, b)`; missing buckets are
/// zero) over the buckets of [`starts`], the series named `series`.
pub(super) fn chart(
    points: &[(i64, i64, i64)],
    now: i64,
    (bucket, count): (i64, i64),
    label: fn(i64) -> String,
    series: [&'static str; 2],
    summary: String,
) -> pages::Chart {
    let bars: Vec<(i64, i64, i64)> = starts(now, bucket, count)
        .map(|start| points.iter().find(|p| p.0 == start).copied().unwrap_or((start, 0, 0)))
        .collect();
    let top = bars.iter().map(|b| b.1.max(b.2)).max().unwrap_or(0).max(1);
    let (width, height) = (640_i64, 160_i64);
    let slot = width / count.max(1);
    let scale = |n: i64| n.max(0) * (height - 20) / top;
    pages::Chart {
        width,
        height,
        top,
        series,
        summary,
        bars: bars
            .iter()
            .enumerate()
            .map(|(i, &(start, a, b))| {
                let x = i as i64 * slot;
                pages::Bar {
                    label: label(start),
                    a,
                    b,
                    x_a: x + 1,
                    x_b: x + slot / 2,
                    w: (slot / 2 - 1).max(1),
                    h_a: scale(a),
                    h_b: scale(b),
                    y_a: height - 16 - scale(a),
                    y_b: height - 16 - scale(b),
                    tick: (i as i64) % (count / 6).max(1) == 0,
                    x_label: x + 1,
                }
            })
            .collect(),
    }
}

/// `HH:MM` (UTC) of a bucket's start.
pub(super) fn hour_label(start: i64) -> String {
    rfc3339(start).get(11..16).unwrap_or_default().to_owned()
}

/// `MM-DD` (UTC) of a bucket's start.
pub(super) fn day_label(start: i64) -> String {
    rfc3339(start).get(5..10).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_end_now_and_bars_scale_to_the_highest() {
        let now = 10 * 3600 + 1800;
        let c = chart(&[(9 * 3600, 4, 1), (3600, 9, 9)], now, (3600, 4), hour_label, ["x", "y"], String::new());
        let labels: Vec<&str> = c.bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["07:00", "08:00", "09:00", "10:00"], "the current hour last; older points left out");
        assert_eq!(c.top, 4);
        let nine = &c.bars[2];
        assert_eq!((nine.a, nine.b, nine.h_a, nine.h_b), (4, 1, 140, 35));
        assert_eq!(nine.y_a + nine.h_a, c.height - 16, "bars stand on the axis");
        assert_eq!(c.bars[3].h_a, 0);
    }
}
