import Raft
import SeededRandom

/// Convenience draws on the seeded generator that drives a whole simulation.
extension SeededGenerator {
    /// True with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() >> 11) / Double(1 << 53) < probability
    }

    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func element<T>(of array: [T]) -> T {
        array[Int(next() % UInt64(array.count))]
    }

    mutating func shuffled<T>(_ array: [T]) -> [T] {
        var result = array
        if result.count < 2 { return result }
        for i in stride(from: result.count - 1, to: 0, by: -1) {
            result.swapAt(i, Int(next() % UInt64(i + 1)))
        }
        return result
    }
}

extension SeededGenerator {
    /// Uniform in [0, 1).
    mutating func double() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
