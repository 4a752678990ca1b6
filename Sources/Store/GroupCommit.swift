import Foundation

/// Group commit: callers that arrive while a transaction is being written wait, and the first of them to
/// get the writer writes everything that waited in one transaction, so one WAL sync and one copy of each
/// page a transaction touches serve them all. Nobody waits for company: a caller alone writes at once.
/// `write` answers each request of a group in order (a failure may be one caller's alone).
final class GroupCommit<Request, Answer>: @unchecked Sendable {
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private var pending: [Ticket] = []
    private var writing = false

    private final class Ticket {
        let request: Request
        var answer: Result<Answer, any Error>?
        init(_ request: Request) { self.request = request }
    }

    /// How many callers wait for the writer now (for tests).
    var waiting: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    func submit(_ request: Request, write: ([Request]) -> [Result<Answer, any Error>]) throws -> Answer {
        let ticket = Ticket(request)
        condition.lock()
        defer { condition.unlock() }
        pending.append(ticket)
        while true {
            if let answer = ticket.answer { return try answer.get() }
            if writing {
                condition.wait()
                continue
            }
            writing = true
            let group = pending
            pending = []
            condition.unlock()
            let answers = write(group.map(\.request))
            condition.lock()
            precondition(answers.count == group.count, "a group commit answers every request")
            for (t, a) in zip(group, answers) { t.answer = a }
            writing = false
            condition.broadcast()
        }
    }
}
