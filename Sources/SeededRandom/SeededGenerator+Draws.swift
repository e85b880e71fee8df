/// Draws the simulations and load generators make on a seeded generator; each is a pure
/// function of the generator's state, so a seed replays the same draws.
extension SeededGenerator {
    /// True with probability `probability`.
    public mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && double() < probability
    }

    public mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    public mutating func element<T>(of array: [T]) -> T {
        array[Int(next() % UInt64(array.count))]
    }

    public mutating func shuffled<T>(_ array: [T]) -> [T] {
        var result = array
        if result.count < 2 { return result }
        for i in stride(from: result.count - 1, to: 0, by: -1) {
            result.swapAt(i, Int(next() % UInt64(i + 1)))
        }
        return result
    }

    /// Uniform in [0, 1).
    public mutating func double() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
