import Tensor

/// A model part that owns parameters, listed explicitly under diffusers' checkpoint keys.
///
/// No reflection: each layer says which tensors it has and under which key suffix
/// (`weight`, `norm1.bias`, `to_q.weight`), and composite layers prefix their children's
/// keys, so the mapping to a checkpoint is written once, next to the layer.
public protocol Layer: AnyObject {
    /// (key, parameter) pairs relative to this layer.
    var namedParameters: [(String, Tensor)] { get }
}

extension Layer {
    /// The parameters alone, in key order of `namedParameters`.
    public var parameters: [Tensor] { namedParameters.map(\.1) }

    /// The number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Freezes (or unfreezes) every parameter.
    public func setTrainable(_ trainable: Bool) {
        for p in parameters { p.requiresGrad = trainable }
    }
}

/// Prefixes `layer`'s keys with `prefix.`, as PyTorch's module tree does.
public func scoped(_ prefix: String, _ layer: Layer?) -> [(String, Tensor)] {
    guard let layer else { return [] }
    return layer.namedParameters.map { ("\(prefix).\($0.0)", $0.1) }
}

/// Prefixes the keys of a list of layers with `prefix.<index>`, as nn.ModuleList does.
public func scoped(_ prefix: String, _ layers: [Layer]) -> [(String, Tensor)] {
    layers.enumerated().flatMap { scoped("\(prefix).\($0.offset)", $0.element) }
}

extension Optional where Wrapped == RandomKey {
    /// `n` keys derived from this one. A nil key means no random initialization (the
    /// parameters start at zero, to be loaded from a checkpoint) and stays nil.
    func split(_ n: Int) -> [RandomKey?] {
        map { $0.split(n) } ?? Array(repeating: nil, count: n)
    }
}

/// A parameter drawn from U(-bound, bound) with `key`, or zeros when `key` is nil.
func initialUniform(_ shape: [Int], bound: Float, key: RandomKey?) -> Tensor {
    guard let key else { return Tensor.zeros(shape) }
    return Tensor.uniform(shape, low: -bound, high: bound, key: key)
}

/// A parameter drawn from N(0, std^2) with `key`, or zeros when `key` is nil.
func initialNormal(_ shape: [Int], std: Float, key: RandomKey?) -> Tensor {
    guard let key else { return Tensor.zeros(shape) }
    return Tensor.randn(shape, key: key) * std
}
