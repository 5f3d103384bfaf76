"""The teacher: a frozen vision-language model, run once per dataset.

For every decodable video it encodes sampled frames (open_clip: each frame alone; X-CLIP: the
clip, through its video encoder) and stores the features (float16), and it encodes class-name
prompts into text embeddings. Every student run, whatever
its method, fraction or seed, reads this one store: the teacher costs nothing per run.

  backends    the backend registry (teacher.backend): open_clip, xclip; a teacher's one name
  backend_base  what a backend is: the registry and its two interfaces
  openclip_teacher  open_clip's backend: frame encoder, text encoder, config problems
  xclip_teacher     X-CLIP's backend: video encoder, video-conditioned zero-shot, snapshots
  weights     open_clip models from a name and a tag, file or folder; offline; weights only
  sampling    which frames of a video are encoded (the sampling-mode registry)
  preprocess  open_clip's preprocessing, batched; the decoding dataset
  prompts     class-name prompts and the stored prompt sets
  features    extraction, in one job or resumable shards, and the gather
  store       the feature store: the one teacher API training and evaluation import
  pretrain    the generated dataset's own CLIP-style teacher
  video_classifier  the CLIP as a video classifier (what clip_finetune trains)
"""
