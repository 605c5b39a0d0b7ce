"""Where frames and photos come from: cameras, video files, streams, image folders, photo files."""
