import SeededRandom

/// Draws on the seeded generator that drives a whole simulation.
extension SeededGenerator {
    /// True with probability `probability`.
    public mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() >> 11) / Double(1 << 53) < probability
    }

    public mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    public mutating func element<T>(of array: [T]) -> T {
        array[Int(next() % UInt64(array.count))]
    }
}
