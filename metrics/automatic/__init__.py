"""Automatic video metrics: VAE-reconstruction evaluations (SSIM, PSNR, rFVD) and automatic scores (CLIP,
motion), with their models, services, jobs, pages and API. The numerics are the pure torch code in
`metrics.video`; this package only loads rows, runs it and stores what it returns."""
