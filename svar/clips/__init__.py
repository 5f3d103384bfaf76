"""The student's clips: which frames of a video a clip holds, the shared cache those frames are
decoded into once, and the views the student is trained and tested on ("clip" is a video clip
throughout; the CLIP teacher is svar.teacher).

  sampling     the clip-sampling modes (student.sampling, a registry): the keys each reads, its
               checks, the frames its cache keeps, its training and test clips; ClipSpec
  views        training views (crops, flips, RandAugment, the strong view) and test crops
  cache_parts  what a part of the shared cache holds (its options, videos and kept frames) and
               the files it lies in (shards and their indexes); decoding kept frames
  shards       building one shard, resumably, within a memory request (rule clip_cache_shard)
  receipt      a part's receipt: gathering its shards, checking them (rule clip_cache)
  store        the frames a job reads (ClipStore: the shards memory-mapped, or decoded into
               memory; ClipCache: the rows training clips are drawn from) and reading clips
"""
