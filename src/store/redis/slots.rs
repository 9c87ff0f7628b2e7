//! Redis Cluster hash slots: which of the 16,384 slots a key lives in (CRC16-XMODEM of its hash
//! tag, the part between the first `{` and the next `}` when that is not empty). Every key of a
//! subscriber carries `{SUB}`, so they share a slot; the event writer and the erasure use this
//! to send each slot's commands to the node that holds it.

/// How many slots a Redis Cluster has.
pub(crate) const SLOTS: u16 = 16_384;

/// The slot of `key`, as `CLUSTER KEYSLOT` computes it.
pub(crate) fn slot(key: &str) -> u16 {
    crc16(hash_tag(key.as_bytes())) % SLOTS
}

/// The part of a key that decides its slot.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(length) = key[open + 1..].iter().position(|&b| b == b'}') {
            if length > 0 {
                return &key[open + 1..open + 1 + length];
            }
        }
    }
    key
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_what_redis_computes() {
        // Values from `CLUSTER KEYSLOT` (and the Redis Cluster specification's test vector).
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("events:opens:{0}"), 13907);
        assert_eq!(slot("events:opens:{15}"), 4178);
    }

    #[test]
    fn hash_tags_decide_the_slot() {
        assert_eq!(slot("ctx:{alice}"), slot("alice"));
        assert_eq!(slot("ctx:{alice}"), slot("lock:{alice}:demo:cart"));
        assert_eq!(slot("ctx:{alice}"), slot("evbatch:{alice}"));
        // An empty tag is no tag: the whole key counts; only the first `{` opens one.
        assert_eq!(slot("a{}b"), crc16(b"a{}b") % SLOTS);
        assert_eq!(slot("x{a}{b}"), slot("a"));
        assert_eq!(slot("x{"), crc16(b"x{") % SLOTS);
        assert_eq!(slot("{a}b}"), slot("a"));
    }
}
