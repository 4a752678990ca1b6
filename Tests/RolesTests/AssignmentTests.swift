import Foundation
import Testing

@testable import Roles

/// How the work partitions are spread over the live workers: balanced, the same for every worker, and a
/// change of membership moves few of them.
@Suite struct AssignmentTests {
    static func workers(_ n: Int, from offset: Int = 0) -> [String] {
        (offset..<offset + n).map { "vm-\($0 * 7919 % 10007)-\(String($0, radix: 16))" }
    }

    @Test(arguments: [1, 2, 3, 5, 8, 13])
    func everyPartitionHasOneOwnerAndTheSharesAreEven(members: Int) {
        for partitions in [1, 8, 32, 100] {
            let list = Self.workers(members)
            let a = Coordinator.assignment(members: list, partitions: partitions)
            #expect(Set(a.keys) == Set(0..<partitions))
            let counts = list.map { m in a.values.filter { $0 == m }.count }
            #expect(counts.max()! - counts.min()! <= 1, "\(partitions) over \(members): \(counts)")
            // Each member's share, as it computes it, is what the assignment gives it.
            let shares = list.flatMap { Coordinator.share(of: $0, members: list, partitions: partitions) }
            #expect(shares.sorted() == Array(0..<partitions))
        }
    }

    @Test func theSameWhateverTheOrderOfTheList() {
        let list = Self.workers(5)
        #expect(Coordinator.assignment(members: list, partitions: 32) == Coordinator.assignment(members: list.reversed(), partitions: 32))
        #expect(Coordinator.share(of: "not-a-member", members: list, partitions: 32).isEmpty)
    }

    @Test func aJoinOrALeaveMovesAboutWhatMustMove() {
        // What must move when going from a to b members: the partitions the members that stay must give
        // up or take to reach their new even share (ceil-based lower bound).
        var moved = 0, modulo = 0, needed = 0
        for trial in 0..<40 {
            let pool = Self.workers(6, from: trial * 10)
            for (a, b) in [(1, 2), (2, 3), (3, 4), (4, 3), (3, 2), (2, 5), (5, 4)] {
                let before = Coordinator.assignment(members: Array(pool.prefix(a)), partitions: 32)
                let after = Coordinator.assignment(members: Array(pool.prefix(b)), partitions: 32)
                moved += (0..<32).filter { before[$0] != after[$0] }.count
                let mod = { (n: Int, p: Int) in Array(pool.prefix(n)).sorted()[p % n] }
                modulo += (0..<32).filter { mod(a, $0) != mod(b, $0) }.count
                needed += b > a ? 32 - 32 * a / b : 32 - 32 * b / a
            }
        }
        #expect(Double(moved) <= Double(needed) * 1.25, "moved \(moved), at least \(needed) had to")
        #expect(moved * 3 < modulo * 2, "moved \(moved) against \(modulo) for p mod n")
    }
}
