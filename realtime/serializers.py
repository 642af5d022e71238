from rest_framework import serializers

from realtime.rooms import room_is_valid


class BroadcastInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=1000)
    room = serializers.CharField(max_length=64, required=False, help_text="Default: every socket (broadcast).")

    def validate_room(self, value: str) -> str:
        if not room_is_valid(value):
            raise serializers.ValidationError("Not a room: broadcast, user:<id>, host:<id> or property:<id>.")
        return value


class PropertyMessageInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=1000)


class SentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="uuid")
    room = serializers.CharField()
    offset = serializers.IntegerField()
    epoch = serializers.CharField()


class SocketProcessSerializer(serializers.Serializer):
    name = serializers.CharField()
    started_at = serializers.DateTimeField()
    heartbeat_at = serializers.DateTimeField()
    sockets = serializers.IntegerField()
    rooms = serializers.DictField(child=serializers.IntegerField())
    delivered = serializers.IntegerField()
    dropped = serializers.IntegerField()


class SocketStatusSerializer(serializers.Serializer):
    sockets = serializers.IntegerField()
    rooms = serializers.DictField(child=serializers.IntegerField())
    delivered = serializers.IntegerField()
    dropped = serializers.IntegerField()
    processes = SocketProcessSerializer(many=True)
