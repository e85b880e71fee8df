/// Turns the operator's `--cluster-id` name into the 64-bit id carried by every peer
/// message and stored in each data dir (FNV-1a: stable across processes and releases).
public enum ClusterID {
    public static func hash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }
}
