from transfuse.bases import TransferStrategy


class BiasOnly(TransferStrategy):
    def prepare(self, ctx):
        self.context, self.frozen = ctx, []
        for name, param in ctx.target_model.named_parameters():
            keep = name.endswith("bias") or (self.options.head and name.startswith("head."))
            if param.requires_grad and not keep:
                param.requires_grad_(False)
                self.frozen.append(param)

    def finalize(self, model):
        for param in self.frozen:
            param.requires_grad_(True)
