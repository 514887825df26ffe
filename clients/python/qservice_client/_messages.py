"""The service's message classes, built from the compiled descriptor (qservice.desc, made by generate.py)."""
import pathlib

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_pool = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString((pathlib.Path(__file__).parent / "qservice.desc").read_bytes()).file:
    _pool.Add(_file)


def _message(name: str):
    descriptor = _pool.FindMessageTypeByName(f"qservice.v1.{name}")
    build = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    return build(descriptor) if build else message_factory.MessageFactory(_pool).GetPrototype(descriptor)


ScoreItem = _message("ScoreItem")
ScoreRequest = _message("ScoreRequest")
ScoreResponse = _message("ScoreResponse")
NextTokensRequest = _message("NextTokensRequest")
NextTokensResponse = _message("NextTokensResponse")
SampleRequest = _message("SampleRequest")
SampleResponse = _message("SampleResponse")
GetModelInfoRequest = _message("GetModelInfoRequest")
ModelInfo = _message("ModelInfo")


def enum_value(enum: str, name: str) -> int:
    return _pool.FindEnumTypeByName(f"qservice.v1.{enum}").values_by_name[name].number


def enum_name(enum: str, number: int) -> str:
    return _pool.FindEnumTypeByName(f"qservice.v1.{enum}").values_by_number[number].name
