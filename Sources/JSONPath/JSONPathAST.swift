/// The syntax tree of an RFC 9535 query. Built by `JSONPathParser`, evaluated by `JSONPath.select`.

indirect enum Segment: Sendable {
    case child([Selector])
    case descendant([Selector])

    var selectors: [Selector] {
        switch self {
        case .child(let s), .descendant(let s): return s
        }
    }
}

enum Selector: Sendable {
    case name(String)
    case wildcard
    case index(Int)
    case slice(start: Int?, end: Int?, step: Int?)
    case filter(LogicalExpr)
}

struct Query: Sendable {
    enum Root: Sendable { case root, current }
    var root: Root
    var segments: [Segment]

    /// A singular query has only child segments with one name or index selector each (RFC 9535 2.3.5.1).
    var isSingular: Bool {
        segments.allSatisfy { segment in
            guard case .child(let selectors) = segment, selectors.count == 1 else { return false }
            switch selectors[0] {
            case .name, .index: return true
            default: return false
            }
        }
    }
}

indirect enum LogicalExpr: Sendable {
    case or([LogicalExpr])
    case and([LogicalExpr])
    case not(LogicalExpr)
    case comparison(Comparable, ComparisonOp, Comparable)
    case exists(Query)
    case function(FunctionCall)  // a function whose result is LogicalType or NodesType
}

enum ComparisonOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
}

indirect enum Comparable: Sendable {
    case literal(JSON)
    case query(Query)  // always singular
    case function(FunctionCall)  // always ValueType
}

enum FunctionType: Sendable { case value, logical, nodes }

struct FunctionCall: Sendable {
    var name: String
    var arguments: [FunctionArgument]
}

indirect enum FunctionArgument: Sendable {
    case literal(JSON)
    case query(Query)
    case logical(LogicalExpr)
    case function(FunctionCall)
}
