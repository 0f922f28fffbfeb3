from transfuse import Options, StrategyEntry, hookimpl


class BiasOnlyOptions(Options):
    head: bool = True  # the head trains whole too: a new task needs more than biases


@hookimpl
def transfuse_strategies():
    entry = StrategyEntry(
        name="strategy.bias-only",
        factory="transfuse_bias_only.strategy:BiasOnly",
        options=BiasOnlyOptions,
        description="Train only the biases (BitFit) and the head.",
    )
    return [entry]
