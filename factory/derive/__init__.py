"""Images built FROM ours: Containerfiles run by buildah, bytes owned by reprobase.

containerfile (what we accept), base (the pinned base image), context (the build
context as a canonical tar), buildah (running the steps), reserialise (buildah's
new layer to our canonical layer), describe (what a derived image records).
"""
