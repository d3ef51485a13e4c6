custom_imports = dict(imports=["cli_toy"], allow_failed_imports=False)
model = dict(type="CliToyModel", hidden=8)
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=2)
param_scheduler = [dict(type="MultiStepLR", milestones=[2], gamma=0.5)]
