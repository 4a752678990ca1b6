import Foundation
import Synchronization
import Testing

@testable import Rules
@testable import Store

/// Callers that arrive while a transaction is written are written together by the next of them.
@Suite struct GroupCommitTests {
    @Test func callersWhoArriveWhileOneWritesAreWrittenTogetherEachWithItsOwnAnswer() throws {
        let group = GroupCommit<Int, String>()
        let arrived = Atomic<Int>(0)
        let writes = Mutex<[[Int]]>([])
        let answers = Mutex<[Int: String]>([:])
        let callers = 8
        let done = DispatchGroup()
        for n in 0..<callers {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                // The first caller writes alone and holds the writer until every other one is waiting.
                if n > 0 { while arrived.load(ordering: .acquiring) == 0 { usleep(1000) } }
                arrived.add(1, ordering: .releasing)
                let answer = try? group.submit(n) { requests in
                    if requests == [0] {
                        // Until the seven others wait for the writer (not a fixed pause: a loaded machine
                        // may start a thread late).
                        let deadline = Date().addingTimeInterval(30)
                        while group.waiting < callers - 1 && Date() < deadline { usleep(1000) }
                    }
                    writes.withLock { $0.append(requests) }
                    return requests.map { $0 == 5 ? .failure(StoreError("five fails alone")) : .success("answer \($0)") }
                }
                answers.withLock { $0[n] = answer }
            }
        }
        done.wait()
        let written = writes.withLock { $0 }
        #expect(written.count == 2, "one write for the first caller, one for the seven that waited: \(written)")
        #expect(written.first == [0] && Set(written.last ?? []) == Set(1..<callers))
        let got = answers.withLock { $0 }
        for n in 0..<callers {
            #expect(got[n] == (n == 5 ? nil : "answer \(n)"), "caller \(n)")
        }
    }

    /// SQLite: callers on threads of their own, all committed, each conversation's versions in order.
    @Test func sqliteCommitsFromManyThreadsAllLand() throws {
        let store = try SQLiteStore(path: temporarySQLitePath("sb-group-commit"))
        let done = DispatchGroup()
        let failures = Mutex<[String]>([])
        for t in 0..<6 {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                for v in 0..<20 {
                    let commit = Commit(inbound: InboundKey("customer-a", "t\(t)-\(v)"), conversationId: "c\(t)", expectedVersion: v, at: Date())
                    do {
                        let outcome = try store.commit([commit])
                        if outcome != [.committed(version: v + 1)] { failures.withLock { $0.append("t\(t) v\(v): \(outcome)") } }
                    } catch { failures.withLock { $0.append("t\(t) v\(v): \(error)") } }
                }
            }
        }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        for t in 0..<6 { #expect(try store.conversation(id: "c\(t)")?.version == 20) }
    }
}
