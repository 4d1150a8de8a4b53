"""Parameter counts of a model, by part, and CoBraR against RecBole's DMF at equal architecture.

CoBraR (one branch shared by users and items) and DMF (a user tower and an item tower) both start
with a linear down-projection of the user's row / item's column of the interaction matrix; what
differs is the branch after it. :func:`dmf_like` gives DMF the same architecture as a CoBraR
config (projection size, hidden layers, embedding size), so that the report shows the branch
parameters at 1x against 2x.
"""

from collections import OrderedDict

# {model: {part: top-level modules}}; a model not listed is reported by top-level module
PARTS = {
    "CoBraR": {
        "projections": ("user_projection", "item_projection"),
        "branch": ("branch",),
    },
    "DMF": {
        "projections": ("user_linear", "item_linear"),
        "branch": ("user_fc_layers", "item_fc_layers"),
    },
}


def count_parameters(model):
    """{top-level module: trainable parameters} of ``model`` (OrderedDict, modules in order)."""
    counts = OrderedDict()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            module = name.split(".", 1)[0]
            counts[module] = counts.get(module, 0) + parameter.numel()
    return counts


def parameter_report(model):
    """Trainable parameters by part (OrderedDict ending with ``total``).

    For models in :data:`PARTS` the parts are named by role (``projections``, ``branch``);
    otherwise they are the model's top-level modules.
    """
    counts = count_parameters(model)
    parts = PARTS.get(type(model).__name__)
    report = OrderedDict()
    if parts is None:
        report.update(counts)
    else:
        for part, modules in parts.items():
            report[part] = sum(counts.get(module, 0) for module in modules)
        grouped = {module for modules in parts.values() for module in modules}
        other = sum(count for module, count in counts.items() if module not in grouped)
        if other:
            report["other"] = other
    report["total"] = sum(counts.values())
    return report


def dmf_like(config):
    """DMF config keys giving RecBole's DMF the architecture of CoBraR ``config`` (dict).

    Each DMF tower gets CoBraR's projection (``n -> projection_size``) and the layers of its
    branch (``branch_layers`` then ``embedding_size``).
    """
    hidden = list(config["branch_layers"] or []) + [config["embedding_size"]]
    return {
        "user_embedding_size": config["projection_size"],
        "item_embedding_size": config["projection_size"],
        "user_hidden_size_list": hidden,
        "item_hidden_size_list": hidden,
        "inter_matrix_type": config["inter_matrix_type"],
    }
