/// Turns a concept file's templates into prompts: what the method needs from a model's
/// world to write the prompts of pairs and of prior preservation. `PlainPrompts` serves any
/// model whose concept files hold plain prompts; the embedded world fills placeholders from
/// its scenes. Prompt i depends only on (concept file, seed, i).
public protocol PromptFiller {
    /// Refuses a concept file this filler cannot fill (a placeholder it does not know), with
    /// an error naming the file and key: called before any work.
    func check(_ concept: ConceptFile) throws

    /// `count` (unsafe, safe) prompt pairs for `duo synthesize`.
    func pairPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws -> [PromptPair]

    /// `count` keep prompts for prior preservation (empty when the file has none).
    func keepPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws -> [String]
}

/// The filler for plain prompts: pair i is template pair `i % templates`, keep prompt i is
/// keep prompt `i % keep prompts`. A template with a placeholder is refused.
public struct PlainPrompts: PromptFiller {
    public init() {}

    public func check(_ concept: ConceptFile) throws {
        for (key, template) in concept.templates {
            if let name = try? PromptTemplate.placeholders(in: template).first {
                throw concept.problem(
                    "'{\(name)}' in \"\(template)\" needs a world that fills placeholders; "
                        + "this model's prompts are plain (write the prompt out)", key: key)
            }
        }
        if concept.pairSceneSize != nil {
            throw concept.problem(
                "plain prompts draw no scenes, so a scene size means nothing here",
                key: "prompts.size")
        }
    }

    public func pairPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws
        -> [PromptPair]
    {
        try check(concept)
        guard !concept.unsafePrompts.isEmpty else { return [] }
        return (0..<count).map { i in
            let t = i % concept.unsafePrompts.count
            return PromptPair(unsafe: concept.unsafePrompts[t], safe: concept.safePrompts[t])
        }
    }

    public func keepPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws -> [String] {
        try check(concept)
        guard !concept.keepPrompts.isEmpty else { return [] }
        return (0..<count).map { concept.keepPrompts[$0 % concept.keepPrompts.count] }
    }
}
