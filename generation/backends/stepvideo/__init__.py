"""Step-Video-T2V (and Turbo) natively in PyTorch: no prebuilt attention library, no text-encoder server.

Point a model at the published folder (`huggingface-cli download stepfun-ai/stepvideo-t2v` or
`stepfun-ai/stepvideo-t2v-turbo`, copied to the worker beforehand: nothing is fetched at run time) and
load it with the `stepvideo` backend:

    load_backend("stepvideo", "/models/stepvideo-t2v", device="cuda", dtype=torch.bfloat16)
    load_backend("stepvideo", "/models/stepvideo-t2v-turbo", device="cuda", dtype=torch.bfloat16,
                 options={"variant": "turbo"})

The folder is read as released (`checkpoint.py` lists it); Step-LLM's tokenizer needs `sentencepiece`.
A single 141 GB GPU holds the 30B DiT in bf16 next to the text encoders; on smaller GPUs put the text
encoders and the VAE elsewhere (`text_device`, `vae_device`) or `offload` them, and they are freed after
encoding by default. Several GPUs share one video through tensor parallelism (`parallel`, launched with
torchrun). Modules: `dit`, `vae`, `text_encoders`, `sampler`, `checkpoint`, `backend`, `parallel`, and
`tiny` (toy checkpoints for tests). `perf/stepvideo_equivalence.py` compares every part with the
official code; `perf/stepvideo_step.py` times a full-size denoising step.
"""
