"""Preference learning on tensors (no Django): the flow-matching DPO loss and the Video-DPO trainer, the
reward model, and on-policy pair selection. The site's jobs load rows and files, call these, store results."""
