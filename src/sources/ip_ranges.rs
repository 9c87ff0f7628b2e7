//! Address ranges looked up by binary search: CIDR networks turned, once, into sorted
//! disjoint spans (IPv4 and IPv6 apart), each carrying a value. A network nested inside
//! another wins inside it, so the most specific entry answers. Built for Apple's relay egress
//! list (about 300,000 networks) and used for every network list of the mail-client rules.

use ipnet::IpNet;
use std::net::IpAddr;

/// A table of networks, each with a value; [`RangeTable::get`] is O(log n).
#[derive(Debug, Clone)]
pub(crate) struct RangeTable<T> {
    v4: Vec<Span<u32, T>>,
    v6: Vec<Span<u128, T>>,
}

/// Addresses `start..=end`, all answering `value`.
#[derive(Debug, Clone, Copy)]
struct Span<A, T> {
    start: A,
    end: A,
    value: T,
}

/// The two address widths, as the integers the spans are kept in.
trait Address: Copy + Ord {
    fn next(self) -> Option<Self>;
    fn previous(self) -> Option<Self>;
}

impl Address for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn previous(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Address for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn previous(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl<T> Default for RangeTable<T> {
    fn default() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

impl<T: Copy + Eq> RangeTable<T> {
    /// Builds the table. The same network given twice keeps the later value; neighbouring
    /// spans with equal values are merged.
    pub(crate) fn build(networks: impl IntoIterator<Item = (IpNet, T)>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (order, (network, value)) in networks.into_iter().enumerate() {
            // Canonical form: host bits cleared, so a network's start is its first address.
            match network.trunc() {
                IpNet::V4(net) => v4.push(Entry {
                    start: u32::from(net.network()),
                    end: u32::from(net.broadcast()),
                    prefix: net.prefix_len(),
                    order,
                    value,
                }),
                IpNet::V6(net) => v6.push(Entry {
                    start: u128::from(net.network()),
                    end: u128::from(net.broadcast()),
                    prefix: net.prefix_len(),
                    order,
                    value,
                }),
            }
        }
        Self {
            v4: flatten(v4),
            v6: flatten(v6),
        }
    }

    /// The value of the most specific network holding `ip` (an IPv4 address inside IPv6,
    /// `::ffff:a.b.c.d`, is looked up as IPv4).
    pub(crate) fn get(&self, ip: IpAddr) -> Option<T> {
        match ip.to_canonical() {
            IpAddr::V4(ip) => find(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => find(&self.v6, u128::from(ip)),
        }
    }

    /// Whether any network holds `ip`.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.get(ip).is_some()
    }

    /// Whether the table holds no network at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Disjoint spans kept (after nesting is resolved and equal neighbours merged).
    #[cfg(test)]
    pub(crate) fn spans(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Bytes the spans take.
    #[cfg(test)]
    pub(crate) fn span_bytes(&self) -> usize {
        self.v4.len() * std::mem::size_of::<Span<u32, T>>()
            + self.v6.len() * std::mem::size_of::<Span<u128, T>>()
    }
}

/// A network as given, before flattening.
struct Entry<A, T> {
    start: A,
    end: A,
    prefix: u8,
    /// Position in the input: the later of two equal networks wins.
    order: usize,
    value: T,
}

fn find<A: Address, T: Copy>(spans: &[Span<A, T>], ip: A) -> Option<T> {
    let after = spans.partition_point(|span| span.start <= ip);
    let span = spans.get(after.checked_sub(1)?)?;
    (ip <= span.end).then_some(span.value)
}

/// Turns networks (which either nest or are disjoint) into disjoint sorted spans where the
/// innermost network answers: a sweep over the networks in address order with a stack of the
/// networks still open.
fn flatten<A: Address, T: Copy + Eq>(mut entries: Vec<Entry<A, T>>) -> Vec<Span<A, T>> {
    // Wider first at the same start, so an inner network is pushed above its outer one.
    entries.sort_by_key(|e| (e.start, e.prefix, e.order));
    let mut spans: Vec<Span<A, T>> = Vec::with_capacity(entries.len());
    // (end, value) of the networks holding the sweep position, innermost last.
    let mut open: Vec<(A, T)> = Vec::new();
    // The first address not yet given to a span; `None` once past the end of the space.
    let mut cursor: Option<A> = entries.first().map(|e| e.start);
    for entry in entries {
        close_before(&mut open, &mut spans, &mut cursor, Some(entry.start));
        if let (Some((_, value)), Some(from)) = (open.last(), cursor) {
            if let Some(to) = entry.start.previous().filter(|to| from <= *to) {
                push(&mut spans, from, to, *value);
            }
        }
        cursor = Some(entry.start);
        open.push((entry.end, entry.value));
    }
    close_before(&mut open, &mut spans, &mut cursor, None);
    spans
}

/// Pops the open networks that end before `limit` (all of them when `None`), giving each the
/// addresses from the cursor to its end.
fn close_before<A: Address, T: Copy + Eq>(
    open: &mut Vec<(A, T)>,
    spans: &mut Vec<Span<A, T>>,
    cursor: &mut Option<A>,
    limit: Option<A>,
) {
    while let Some(&(end, value)) = open.last() {
        if limit.is_some_and(|limit| end >= limit) {
            break;
        }
        if let Some(from) = cursor.filter(|from| *from <= end) {
            push(spans, from, end, value);
            *cursor = end.next();
        }
        open.pop();
    }
}

/// Appends a span, merged into the previous one when they touch and answer the same.
fn push<A: Address, T: Copy + Eq>(spans: &mut Vec<Span<A, T>>, start: A, end: A, value: T) {
    if let Some(last) = spans.last_mut() {
        if last.value == value && last.end.next() == Some(start) {
            last.end = end;
            return;
        }
    }
    spans.push(Span { start, end, value });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_most_specific_network_answers() {
        let table = RangeTable::build([
            (net("10.0.0.0/8"), 1),
            (net("10.1.0.0/16"), 2),
            (net("10.1.2.0/24"), 3),
            (net("10.2.0.0/16"), 4),
            (net("192.0.2.0/24"), 5),
            (net("2001:db8::/32"), 6),
            (net("2001:db8:1::/48"), 7),
        ]);
        for (addr, want) in [
            ("10.0.0.0", Some(1)),
            ("10.1.0.0", Some(2)),
            ("10.1.1.255", Some(2)),
            ("10.1.2.7", Some(3)),
            ("10.1.3.0", Some(2)),
            ("10.1.255.255", Some(2)),
            ("10.2.0.1", Some(4)),
            ("10.3.0.0", Some(1)),
            ("10.255.255.255", Some(1)),
            ("11.0.0.0", None),
            ("9.255.255.255", None),
            ("192.0.2.255", Some(5)),
            ("::ffff:10.1.2.3", Some(3)),
            ("2001:db8:1::9", Some(7)),
            ("2001:db8:2::9", Some(6)),
            ("2001:db9::", None),
        ] {
            assert_eq!(table.get(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn whole_spaces_host_bits_duplicates_and_merging() {
        let table = RangeTable::build([
            (net("0.0.0.0/0"), 'a'),
            (net("255.255.255.255/32"), 'b'),
            (net("::/0"), 'c'),
            (net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), 'd'),
            // Host bits set: the network is 192.0.2.0/24.
            (net("192.0.2.77/24"), 'e'),
            (net("192.0.2.0/24"), 'f'),
        ]);
        assert_eq!(table.get(ip("0.0.0.0")), Some('a'));
        assert_eq!(table.get(ip("255.255.255.254")), Some('a'));
        assert_eq!(table.get(ip("255.255.255.255")), Some('b'));
        assert_eq!(table.get(ip("192.0.2.1")), Some('f'), "the later duplicate");
        assert_eq!(
            table.get(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some('d')
        );
        assert_eq!(table.get(ip("::1")), Some('c'));
        let merged = RangeTable::build([
            (net("198.51.100.0/25"), 1),
            (net("198.51.100.128/25"), 1),
            (net("198.51.101.0/24"), 2),
        ]);
        assert_eq!(merged.spans(), 2, "touching spans with one value are one");
        assert!(RangeTable::<u8>::build([]).is_empty());
    }

    proptest::proptest! {
        /// Whatever the networks, the table answers what a linear scan for the most specific
        /// (then latest) network holding the address answers.
        #[test]
        fn agrees_with_a_linear_scan(
            networks in proptest::collection::vec((0u32..64, 20u8..=32, 0u8..4), 0..40),
            probes in proptest::collection::vec(0u32..(64 << 8), 0..60),
        ) {
            let networks: Vec<(IpNet, u8)> = networks
                .into_iter()
                .map(|(block, prefix, value)| {
                    let addr = std::net::Ipv4Addr::from(0x0a00_0000 | (block << 8));
                    (IpNet::V4(ipnet::Ipv4Net::new(addr, prefix).unwrap().trunc()), value)
                })
                .collect();
            let table = RangeTable::build(networks.iter().copied());
            for probe in probes {
                let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | probe));
                let expected = networks
                    .iter()
                    .enumerate()
                    .filter(|(_, (network, _))| network.contains(&addr))
                    .max_by_key(|(order, (network, _))| (network.prefix_len(), *order))
                    .map(|(_, (_, value))| *value);
                proptest::prop_assert_eq!(table.get(addr), expected, "{}", addr);
            }
        }
    }
}
