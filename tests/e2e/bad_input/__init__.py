"""Bad input at every boundary, against the real services as separate processes and the real broker.

One stack for the package (``dasan asr gateway``, ``dasan asr worker``, ``dasan assist run``,
``dasan console run``, each with its own consumer group: ``conftest.py``), shared by its four
modules, in the order of their numbers:

1. **Audio ingest** (``test_1_audio_ingest``, the gateway's WebSocket): malformed frames, bad start
   messages, frames out of order, a 50 MB frame (refused with close 1009 while the gateway's RSS
   stays flat), a call that goes silent (ended after the idle timeout with
   ``CallEnded(reason=idle_timeout)``), and a good call afterwards.
2. **Kafka topics** (``test_2_bad_records``): invalid JSON, a newer ``schema_version``, an unknown
   event type and an event type that belongs on another topic, produced with a raw
   ``KafkaProducer`` to every topic of the registry. Every consumer group that reads the topic must
   dead-letter each record to the topic's DLQ with the error headers, and stay ready. Who consumes
   what (``harness.CONSUMERS``):

   ==================  ===============================================
   call.events         asr workers, assist, console recorder
   call.audio          asr workers
   call.transcripts    assist, console recorder
   assist.suggestions  console recorder
   call.summaries      console recorder
   ==================  ===============================================

   Every registry topic has at least one consumer, so every topic's DLQ is asserted; the test
   fails if a topic is added to the registry without deciding who consumes it. After all the bad
   records, a good call (real speech through the gateway) must still go all the way through:
   transcript, summary, console — its events share the partitions the bad records went to.
3. **Console back-pressure** (``test_3_console_backpressure``): a websocket client that never reads
   is dropped while a call produces large events; the console's RSS stays bounded; the client
   resumes with ``?after=SEQ``; a normal client on the same call receives everything exactly once.
4. **Hostile transcripts** (``test_4_hostile_transcripts``) in a real browser (Chromium via
   Playwright): shown literally, nothing executes. Screenshot in ``test-artifacts/e2e/``.
"""
