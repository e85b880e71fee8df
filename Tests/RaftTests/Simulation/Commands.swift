/// Distinct commands for scenarios: an integer's little-endian bytes.
func command(_ value: Int) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
