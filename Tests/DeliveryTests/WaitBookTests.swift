import Foundation
import NIOHTTP1
import Testing

@testable import Delivery
@testable import Rules

/// The delivery's waits without a broker: who waits for a per-issue limit, an endpoint-wide limit and an
/// open circuit, in which delay queue, and in what order a ticket's messages go once the wait is over.
@Suite struct WaitBookTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    @Test func aPerIssueLimitHoldsOnlyThatTicketAndItsLaterMessagesComeBackInOrder() {
        var book = WaitBook()
        #expect(book.plan(ticket: "VX-1", id: "m1", now: at(0)) == .send)
        // m1 answered 429 per issue, Retry-After 2 s: it waits in the 2 s queue.
        #expect(book.hold(ticket: "VX-1", id: "m1", scope: .ticket, code: 429, waitMs: 2_000, reason: "429 per issue", now: at(0)) == .wait(bucketMs: 2_000, reason: "429 per issue"))
        // Another ticket is not held.
        #expect(book.plan(ticket: "VX-2", id: "o1", now: at(0.1)) == .send)
        book.settled(ticket: "VX-2", id: "o1", answered: true, now: at(0.1))
        // Its later messages wait behind it, in the same queue, even after the hold ran out.
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(0.5)) == .wait(bucketMs: 2_000, reason: "429 per issue"))
        #expect(book.plan(ticket: "VX-1", id: "m3", now: at(1.9)) == .wait(bucketMs: 2_000, reason: "429 per issue"))
        // m2 comes back first (m1 was answered 429 again and waits once more): it waits again, behind m1.
        #expect(book.hold(ticket: "VX-1", id: "m1", scope: .ticket, code: 429, waitMs: 1_000, reason: "429 per issue", now: at(2.0)) == .wait(bucketMs: 2_000, reason: "429 per issue"))
        if case .wait(_, let reason) = book.plan(ticket: "VX-1", id: "m2", now: at(3.2)) { #expect(reason == "behind m1 of ticket VX-1") } else { Issue.record("m2 was sent before m1") }
        #expect(book.plan(ticket: "VX-1", id: "m3", now: at(3.9)) != .send)
        // m1 back: sent and settled; then m2 and m3, in that order.
        #expect(book.plan(ticket: "VX-1", id: "m1", now: at(4.0)) == .send)
        book.settled(ticket: "VX-1", id: "m1", answered: true, now: at(4.0))
        #expect(book.plan(ticket: "VX-1", id: "m3", now: at(5.2)) != .send)
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(5.3)) == .send)
        book.settled(ticket: "VX-1", id: "m2", answered: true, now: at(5.3))
        #expect(book.plan(ticket: "VX-1", id: "m3", now: at(7.2)) == .send)
        book.settled(ticket: "VX-1", id: "m3", answered: true, now: at(7.2))
        #expect(book.waitingTickets == 0)
        #expect(book.plan(ticket: "VX-1", id: "m4", now: at(7.3)) == .send)
    }

    /// Try-now: the message sent past the hold went through, so its ticket's hold (and an endpoint-wide one)
    /// is over: the message behind it goes when it comes back, not when the 60 s hold would have ended.
    @Test func aMessageTriedNowThatGoesThroughEndsTheHoldsItWasSentPast() {
        var book = WaitBook()
        #expect(book.plan(ticket: "VX-1", id: "m1", now: at(0)) == .send)
        _ = book.hold(ticket: "VX-1", id: "m1", scope: .ticket, code: 429, waitMs: 60_000, reason: "429 per issue", now: at(0))
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(1)) == .wait(bucketMs: 60_000, reason: "429 per issue"))
        _ = book.hold(ticket: "VX-2", id: "o1", scope: .endpoint, code: 429, waitMs: 60_000, reason: "429 rate limited", now: at(1))
        // m1 sent now by an administrator, answered 204.
        book.settled(ticket: "VX-1", id: "m1", answered: true, now: at(2))
        book.triedThrough(ticket: "VX-1")
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(3)) == .send)
        #expect(book.plan(ticket: "VX-3", id: "p1", now: at(3)) == .send, "the endpoint-wide hold is over too")
    }

    @Test func anEndpointWideLimitHoldsEveryTicketUntilItsTime() {
        var book = WaitBook()
        #expect(book.plan(ticket: nil, id: "c1", now: at(0)) == .send)
        #expect(book.hold(ticket: nil, id: "c1", scope: .endpoint, code: 429, waitMs: 4_000, reason: "429", now: at(0)) == .wait(bucketMs: 5_000, reason: "429"))
        // Nothing is sent before the time the answer named: creates wait out the rest, a ticket's
        // messages queue in one bucket.
        #expect(book.plan(ticket: nil, id: "c2", now: at(1.5)) == .wait(bucketMs: 5_000, reason: "429"))
        #expect(book.plan(ticket: nil, id: "c3", now: at(3.5)) == .wait(bucketMs: 1_000, reason: "429"))
        #expect(book.plan(ticket: "VX-9", id: "u1", now: at(2.5)) == .wait(bucketMs: 2_000, reason: "429"))
        #expect(book.plan(ticket: "VX-9", id: "u2", now: at(3.9)) == .wait(bucketMs: 2_000, reason: "429"))
        #expect(book.plan(ticket: "VX-9", id: "u2", now: at(4.1)) != .send)  // u1 first
        #expect(book.plan(ticket: "VX-9", id: "u1", now: at(4.5)) == .send)
        #expect(book.plan(ticket: nil, id: "c4", now: at(4.0)) == .send)
    }

    @Test func aCircuitBacksOffExponentiallyAndClosesOnTheFirstAnswer() {
        var book = WaitBook(maxWaitMs: 5_000)
        #expect(book.hold(ticket: nil, id: "a", scope: .circuit, code: 0, waitMs: nil, reason: "circuit open", now: at(0)) == .wait(bucketMs: 1_000, reason: "circuit open"))
        #expect(book.circuitOpen)
        #expect(book.plan(ticket: nil, id: "b", now: at(0.5)) != .send)
        // The probe after the wait fails: twice as long; then four times, capped by max_wait.
        #expect(book.plan(ticket: nil, id: "a", now: at(1.0)) == .send)
        #expect(book.hold(ticket: nil, id: "a", scope: .circuit, code: 0, waitMs: nil, reason: "circuit open", now: at(1.0)) == .wait(bucketMs: 2_000, reason: "circuit open"))
        #expect(book.endpointHold?.until == at(3.0))
        #expect(book.plan(ticket: nil, id: "a", now: at(3.0)) == .send)
        _ = book.hold(ticket: nil, id: "a", scope: .circuit, code: 0, waitMs: nil, reason: "circuit open", now: at(3.0))
        #expect(book.endpointHold?.until == at(7.0))
        _ = book.plan(ticket: nil, id: "a", now: at(7.0))
        _ = book.hold(ticket: nil, id: "a", scope: .circuit, code: 0, waitMs: nil, reason: "circuit open", now: at(7.0))
        #expect(book.endpointHold?.until == at(12.0))
        #expect(book.plan(ticket: nil, id: "a", now: at(12.0)) == .send)
        book.settled(ticket: nil, id: "a", answered: true, now: at(12.1))
        #expect(!book.circuitOpen && book.connectFailures == 0)
    }

    @Test func aMessageLostFromItsQueueDoesNotHoldItsTicketForEver() {
        var book = WaitBook()
        _ = book.plan(ticket: "VX-1", id: "m1", now: at(0))
        _ = book.hold(ticket: "VX-1", id: "m1", scope: .ticket, code: 429, waitMs: 1_000, reason: "429 per issue", now: at(0))
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(0.5)) != .send)
        // m1 never comes back (its delay queue was purged): after three rounds of its queue and a minute, m2 goes.
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(30)) != .send)
        #expect(book.plan(ticket: "VX-1", id: "m2", now: at(64)) == .send)
    }

    @Test func aLockedTicketsLaterMessagesWaitForTheResendToGoThrough() {
        var book = WaitBook()
        #expect(book.plan(ticket: "INC1", id: "u1", now: at(0)) == .send)
        book.settled(ticket: "INC1", id: "u1", answered: true, now: at(0))
        book.lock(ticket: "INC1", code: 403, reason: "held: 403", holdMs: 60_000, now: at(0))
        // u2 and u3 wait behind the lock; another ticket does not.
        #expect(book.plan(ticket: "INC1", id: "u2", now: at(0.5)) == .wait(bucketMs: 5_000, reason: "held: 403"))
        #expect(book.plan(ticket: "INC1", id: "u3", now: at(0.6)) == .wait(bucketMs: 5_000, reason: "held: 403"))
        #expect(book.plan(ticket: "INC2", id: "x", now: at(0.7)) == .send)
        // Still locked when they come back; the policy's resend passes the lock, is refused again: locked on.
        #expect(book.plan(ticket: "INC1", id: "u2", now: at(5.5)) != .send)
        #expect(book.plan(ticket: "INC1", id: "r1", now: at(5.8), resend: true) == .send)
        book.settled(ticket: "INC1", id: "r1", answered: true, now: at(5.8))
        book.lock(ticket: "INC1", code: 403, reason: "held: 403", holdMs: 60_000, now: at(5.8))
        #expect(book.plan(ticket: "INC1", id: "u3", now: at(5.9)) != .send)
        // The next resend goes through: released; u2 then u3, in order.
        #expect(book.plan(ticket: "INC1", id: "r2", now: at(8), resend: true) == .send)
        book.settled(ticket: "INC1", id: "r2", answered: true, now: at(8))
        book.released(ticket: "INC1", now: at(8))
        #expect(book.plan(ticket: "INC1", id: "u3", now: at(10.9)) != .send)
        #expect(book.plan(ticket: "INC1", id: "u2", now: at(10.5)) == .send)
        book.settled(ticket: "INC1", id: "u2", answered: true, now: at(10.5))
        #expect(book.plan(ticket: "INC1", id: "u3", now: at(15.9)) == .send)
        // Without a resend that goes through, the lock ends at its time.
        book.lock(ticket: "INC3", code: 403, reason: "held: 403", holdMs: 10_000, now: at(20))
        #expect(book.plan(ticket: "INC3", id: "v1", now: at(21)) != .send)
        #expect(book.plan(ticket: "INC3", id: "v1", now: at(30.1)) == .send)
    }

    @Test func answersThatSayToWaitAreScopedLikeTheirLimit() {
        func outcome(_ code: Int, _ headers: [(String, String)] = [], notSent: Bool = false) -> RestDeliveryHandler.Outcome {
            RestDeliveryHandler.Outcome(code: code, headers: HTTPHeaders(headers), body: Data(), failure: notSent ? "refused" : nil, notSent: notSent)
        }
        let update = RestDeliveryHandler.Request(operation: "update", ticket: "VX-1", method: .PUT, url: "https://x/VX-1", body: Data())
        let create = RestDeliveryHandler.Request(operation: "create", method: .POST, url: "https://x", body: Data())
        let perIssue = [("Retry-After", "3"), ("RateLimit-Reason", "jira-per-issue-on-write")]
        #expect(RestDeliveryHandler.waitScope(outcome(429, perIssue), request: update)?.0 == .ticket)
        #expect(RestDeliveryHandler.waitScope(outcome(429, perIssue), request: update)?.1 == 3_000)
        #expect(RestDeliveryHandler.waitScope(outcome(429, perIssue), request: create)?.0 == .endpoint)
        #expect(RestDeliveryHandler.waitScope(outcome(429, [("Retry-After", "3")]), request: update)?.0 == .endpoint)
        #expect(RestDeliveryHandler.waitScope(outcome(429), request: update)?.1 == nil)
        #expect(RestDeliveryHandler.waitScope(outcome(503, [("Retry-After", "3")]), request: update)?.0 == .endpoint)
        #expect(RestDeliveryHandler.waitScope(outcome(503), request: update) == nil)
        #expect(RestDeliveryHandler.waitScope(outcome(403), request: update) == nil)
        #expect(RestDeliveryHandler.waitScope(outcome(0, notSent: true), request: update)?.0 == .circuit)
        #expect(RestDeliveryHandler.waitScope(outcome(0), request: create) == nil)
    }
}
