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
