"""DermX, DermX+ and diagnosis-only networks, presets, backbone weights and shareable checkpoints."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("PretrainedUnavailableError", "create_backbone"), ".backbone"),
        **dict.fromkeys(("CheckpointError", "intervention_rule", "load_checkpoint", "save_checkpoint"), ".checkpoint"),
        **dict.fromkeys(("InterventionError", "InterventionRule", "fit_intervention_rule", "intervened",
                         "parse_setting"), ".intervention"),
        **dict.fromkeys(
            ("DermXNet", "MODEL_KINDS", "ModelConfig", "ModelKind", "Probabilities", "build_model"), ".dermx_net"
        ),
        **dict.fromkeys(("PRESETS", "Preset", "get_preset"), ".presets"),
        **dict.fromkeys(("WeightsError", "load_backbone_weights"), ".weights"),
    },
)
