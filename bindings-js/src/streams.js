// Helpers for Web streams shared by the Node/worker cache and the browser entry.
/** Iterates a Web `ReadableStream` (Node 20 and older browsers lack `for await` on streams). */
export async function* iterateStream(stream) {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}
